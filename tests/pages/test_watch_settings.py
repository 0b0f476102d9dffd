"""告警设置: the risk-first watch (临近阈值范围, 快速增长) edited by HQ, refused in
Chinese when out of range, audited, and never silently overwriting what another
operator saved meanwhile (also for the thresholds)."""

import pytest
from sqlmodel import select

from base.errors import PermissionDenied
from core.capacity import alert_settings
from db.models import AuditEntry, Role, SettingOverride
from i18n import t
from tests.support.apptest import run_app

BAND, GROWTH = alert_settings.WATCH_BAND, alert_settings.WATCH_GROWTH


def saved(session, key):
    session.expire_all()
    row = session.get(SettingOverride, key)
    return None if row is None else int(row.value_json)


def save_watch(at):
    next(b for b in at.button if b.label == t("alert_settings.save_watch")).click()
    at.run()
    assert not at.exception, at.exception


def test_an_operator_sets_the_watch_band_and_fast_growth_and_it_is_audited(org, session, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    at = run_app("alert_settings.py")
    at.number_input(key="watch_band").set_value(15)
    save_watch(at)
    assert at.success[0].value == t("common.saved")
    assert (saved(session, BAND), saved(session, GROWTH)) == (15, None)  # only what changed is written
    [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "setting.update")).all()
    assert entry.entity_id == BAND and '"value": 10' in entry.before_json and '"value": 15' in entry.after_json
    # Saved again from the same form: checked against what it saved, not what it was opened with.
    at.number_input(key="watch_growth").set_value(20)
    save_watch(at)
    assert at.success[0].value == t("common.saved")
    assert (saved(session, BAND), saved(session, GROWTH)) == (15, 20)


def test_values_out_of_range_are_refused_in_chinese_and_nothing_is_saved(org, session, make_user, as_user):
    as_user(make_user(Role.hq_admin))
    at = run_app("alert_settings.py")
    at.number_input(key="watch_band").set_value(60)
    save_watch(at)
    assert at.error[0].value == t("alert_settings.watch_band_range", minimum=0, maximum=50)
    at.number_input(key="watch_band").set_value(10)
    at.number_input(key="watch_growth").set_value(0)
    save_watch(at)
    assert at.error[0].value == t("alert_settings.watch_growth_range", minimum=1, maximum=100)
    assert (saved(session, BAND), saved(session, GROWTH)) == (None, None)


def test_a_change_saved_meanwhile_is_not_overwritten_and_the_form_reloads_it(org, session, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    at = run_app("alert_settings.py")
    # Another operator saves a wider band after this page was opened.
    other = make_user(Role.hq_admin)
    alert_settings.save_watch(session=session, actor=other.actor, band=15, growth=10, seen={BAND: 10, GROWTH: 10})
    session.commit()
    at.number_input(key="watch_growth").set_value(20)
    save_watch(at)
    change = t("alert_settings.change", setting=t("alert_settings.watch_band_pct"), before=10, after=15)
    assert at.error[0].value == t("alert_settings.conflict", changes=change)
    assert (saved(session, BAND), saved(session, GROWTH)) == (15, None)
    # The form now holds what is in force; saving it again goes through.
    assert (at.number_input(key="watch_band").value, at.number_input(key="watch_growth").value) == (15, 10)
    at.number_input(key="watch_growth").set_value(20)
    save_watch(at)
    assert (saved(session, BAND), saved(session, GROWTH)) == (15, 20)


def test_thresholds_saved_meanwhile_are_not_overwritten_either(org, session, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    at = run_app("alert_settings.py")
    alert_settings.save_thresholds(session=session, actor=make_user(Role.hq_admin).actor, warn=75, critical=90,
                                   full=100, hysteresis=5, repeat_hours=24,
                                   seen={"capacity.warn_pct": 70, "capacity.critical_pct": 90,
                                         "capacity.full_pct": 100, "capacity.hysteresis_pct": 5,
                                         "capacity.repeat_hours": 24})
    session.commit()
    at.number_input(key="th_critical").set_value(85)
    next(b for b in at.button if b.label == t("alert_settings.save_thresholds")).click()
    at.run()
    change = t("alert_settings.change", setting=t("alert_settings.warn_pct"), before=70, after=75)
    assert at.error[0].value == t("alert_settings.conflict", changes=change)
    assert (saved(session, "capacity.warn_pct"), saved(session, "capacity.critical_pct")) == (75, None)


def test_a_branch_scoped_operator_reads_the_watch_settings_but_cannot_change_them(org, session, make_user, as_user):
    as_user(make_user(Role.hq_operator, org["south"]))
    at = run_app("alert_settings.py")
    assert not at.exception, at.exception
    assert t("alert_settings.watch_current", band=10, growth=10) in [c.value for c in at.caption]
    assert not [n for n in at.number_input if n.key in ("watch_band", "watch_growth")]
    # And the service refuses it whatever the page shows.
    with pytest.raises(PermissionDenied):
        alert_settings.save_watch(session=session, actor=make_user(Role.hq_operator, org["south"]).actor, band=20,
                                  growth=10, seen={BAND: 10, GROWTH: 10})
    assert saved(session, BAND) is None

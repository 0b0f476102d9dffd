"""获客链接 on the pages (issue 11 item 4): the funnel page shows each branch's and store's
link figures beside its own; 告警设置 turns links on and sets the low-balance level."""

from datetime import date, datetime, timedelta

from sqlmodel import select

from base.timeutil import display_zone
from core import settings_store
from core.codes.links import day_number
from db.models import AuditEntry, LinkStatistic, Role, SettingOverride
from i18n import t
from tests.support.apptest import run_app
from tests.support.factories import bind, find_store


def store_figures(session, crm_store_id: str, day: date, clicks: int, new: int) -> None:
    session.add(LinkStatistic(store_id=find_store(session, crm_store_id).id, link_id=f"link-{crm_store_id}",
                              day=day_number(day), clicks=clicks, new_customers=new))
    session.commit()


def link_table(at):
    return next(d.value for d in at.dataframe if t("links.funnel.col.clicks") in d.value.columns)


def test_funnel_shows_link_figures_per_branch_then_per_store(session, org, make_user, as_user):
    yesterday = datetime.now(display_zone()).date() - timedelta(days=1)
    store_figures(session, "000101", yesterday, 5, 2)
    store_figures(session, "000102", yesterday, 3, 1)
    store_figures(session, "000201", yesterday, 4, 4)
    as_user(make_user(Role.hq_operator))
    at = run_app("funnel.py")
    assert not at.exception, at.exception
    assert t("links.funnel.title") in [s.value for s in at.subheader]
    table = link_table(at)
    assert list(table[t("links.funnel.col.branch_code")]) == ["BJ01", "SH01"]
    assert list(table[t("links.funnel.col.clicks")]) == [8, 4]
    assert list(table[t("links.funnel.col.new_customers")]) == [3, 4]
    at.selectbox(key="funnel_branch").set_value(org["north"].id).run()
    table = link_table(at)
    assert list(table[t("links.funnel.col.crm_store_id")]) == ["000101", "000102"]
    assert list(table[t("links.funnel.col.clicks")]) == [5, 3]


def test_funnel_without_link_figures_has_no_link_section(session, org, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    at = run_app("funnel.py")
    assert not at.exception, at.exception
    assert t("links.funnel.title") not in [s.value for s in at.subheader]


def test_alert_settings_turn_links_on_and_set_the_balance_level(session, org, make_user, as_user):
    bind(session, "000101", "kf01")
    as_user(make_user(Role.hq_admin))
    at = run_app("alert_settings.py")
    assert not at.exception, at.exception
    assert t("links.settings.quota_unknown") in [c.value for c in at.caption]
    at.toggle(key="links_enabled").set_value(True)
    at.number_input(key="links_balance_low").set_value(50)
    next(b for b in at.button if b.label == t("links.settings.save")).click().run()
    assert not at.exception, at.exception
    assert t("links.settings.saved") in [s.value for s in at.success]
    session.expire_all()
    assert settings_store.effective(session=session, key="codes.links_enabled") is True
    assert settings_store.effective(session=session, key="codes.links_balance_low") == 50
    saved = {row.key for row in session.exec(select(SettingOverride)).all()}
    assert saved == {"codes.links_enabled", "codes.links_balance_low"}  # skip_verify unchanged, not saved
    assert len(session.exec(select(AuditEntry).where(AuditEntry.action == "setting.update")).all()) == 2

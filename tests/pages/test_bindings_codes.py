"""AppTest of 绑定审核's store code: the selected row shows the code (QR, config_id,
state, the member WeCom serves, what is still to change and WeCom's last refusal
in words); HQ prepares the posters of the filtered stores and sets whether an
entry needs its code (告警设置)."""

from sqlmodel import select

from base.problems import problem
from db.models import ContactCode, Role, SettingOverride
from i18n import t
from tests.pages.test_bindings import TABLE, select_rows
from tests.support.apptest import run_app
from tests.support.factories import bind, find_store


def test_the_row_shows_its_code_and_why_wecom_refused_a_change(session, org, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    bind(session, "000101", "acc1", shown=True)
    code = session.exec(select(ContactCode).where(ContactCode.store_id == find_store(session, "000101").id)).one()
    code.userid = "oldacc1"
    code.problem = problem("wecom.reason.no_customer_contact_permission", errcode=84074, errmsg="no permission")
    session.add(code)
    session.commit()
    at = run_app("bindings.py")
    select_rows(at, TABLE, [0])
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert code.config_id in text and code.state in text and "oldacc1" in text
    assert t("codes.detail.pending", userid="acc1") in text
    assert any(t("wecom.reason.no_customer_contact_permission") in w.value for w in at.warning)


def test_a_store_without_its_code_says_the_sidecar_makes_it(session, org, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    bind(session, "000101", "acc1", code=False)
    at = run_app("bindings.py")
    select_rows(at, TABLE, [0])
    assert not at.exception, at.exception
    assert t("codes.detail.none") in [c.value for c in at.caption]


def test_posters_are_for_hq_only(session, org, make_user, as_user):
    bind(session, "000101", "acc1", code=False)
    as_user(make_user(Role.branch_manager, org["north"]))
    at = run_app("bindings.py")
    assert t("codes.posters.prepare") not in [b.label for b in at.button]
    as_user(make_user(Role.hq_operator))
    at = run_app("bindings.py")
    at.button[[b.label for b in at.button].index(t("codes.posters.prepare"))].click().run()
    assert not at.exception, at.exception
    assert t("codes.posters.none") in [c.value for c in at.caption]


def test_hq_turns_off_the_code_requirement_in_the_alert_settings(session, org, make_user, as_user):
    as_user(make_user(Role.hq_admin))
    at = run_app("alert_settings.py")
    assert not at.exception, at.exception
    at.toggle(key="codes_entry_needs_code").set_value(False)
    at.button[[b.label for b in at.button].index(t("codes.settings.save"))].click().run()
    assert not at.exception, at.exception
    saved = session.exec(select(SettingOverride).where(SettingOverride.key == "codes.entry_needs_code")).one()
    assert saved.value_json == "false"

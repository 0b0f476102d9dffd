"""AppTest of 用户管理: linking a user to a WeCom member (shown in the list, a
duplicate refused in Chinese) and turning password login off."""

from sqlmodel import select

from console.ui.text import md
from core.auth import sessions
from db.models import AuditEntry, Role, User
from i18n import t
from tests.support.apptest import run_app


def labelled(widgets, key: str):
    return next(w for w in widgets if w.label == t(key))


def test_admin_links_a_user_and_a_duplicate_is_refused(session, org, make_user, as_user):
    as_user(make_user(Role.hq_admin, username="admin"))
    manager = make_user(Role.branch_manager, org["north"], username="bj_manager").user
    make_user(Role.viewer, username="viewer", wecom_userid="LiSi")
    at = run_app("users.py")
    assert not at.exception
    at.selectbox(key="users_pick").set_value("bj_manager").run()
    at.text_input(key=f"users_edit_wecom_{manager.id}").input("WangJL")
    at.button[[b.label for b in at.button].index(t("common.save"))].click().run()
    assert not at.exception
    assert at.success[0].value == md("users.updated", username="bj_manager")
    session.expire_all()
    assert session.get(User, manager.id).wecom_userid == "WangJL"
    at.run()
    listed = at.dataframe[0].value
    links = dict(zip(listed[t("users.username")], listed[t("users.wecom_userid")], strict=True))
    assert links["bj_manager"] == "WangJL" and links["admin"] == ""

    at.text_input(key="users_create_wecom_userid_0").input("lisi")
    labelled(at.text_input, "users.username").input("other")
    labelled(at.text_input, "users.password").input("long-enough-pw")
    at.button[[b.label for b in at.button].index(t("users.create"))].click().run()
    assert [e.value for e in at.error] == [t("users.wecom_userid_taken", userid="lisi")]
    assert session.exec(select(User).where(User.username == "other")).first() is None


def test_admin_turns_password_login_off(session, org, make_user, as_user):
    as_user(make_user(Role.hq_admin, username="admin"))
    operator = make_user(Role.hq_operator, username="operator")
    at = run_app("users.py")
    assert at.toggle(key="users_password_login").value is True
    at.toggle(key="users_password_login").set_value(False)
    at.button(key="users_password_login_save").click().run()
    assert not at.exception
    assert at.success[0].value == t("users.password_login_saved")
    session.expire_all()
    assert not sessions.password_login_enabled(session=session)
    assert session.exec(select(AuditEntry).where(AuditEntry.entity_id == sessions.PASSWORD_LOGIN_SETTING)).one()
    refused = sessions.log_in(session=session, username="operator", password=operator.password)
    assert refused.error_key == "login.password_login_off"

"""用户管理: HQ's administrator sees which usernames are locked out and unlocks one
at once; its failed attempts are gone and the unlock is audited."""

from sqlmodel import select

from console.ui.text import md
from core.auth import sessions
from db.models import AuditEntry, LoginAttempt, Role
from i18n import t
from tests.support.apptest import run_app


def test_the_admin_unlocks_a_locked_out_user(session, org, make_user, as_user):
    locked = make_user(Role.viewer, username="v")
    for _ in range(5):
        sessions.log_in(session=session, username="v", password="wrong-password", ip="203.0.113.9")
    session.commit()
    as_user(make_user(Role.hq_admin, username="boss"))
    at = run_app("users.py")
    assert not at.exception, at.exception
    listed = at.dataframe[0].value
    assert dict(zip(listed[t("users.username")], listed[t("users.col.locked")], strict=True))["v"] == t("users.locked")
    at.selectbox(key="users_pick").set_value("v").run()
    at.button(key=f"users_unlock_{locked.user.id}").click().run()
    assert not at.exception, at.exception
    assert md("users.unlocked", username="v", count=5) in [s.value for s in at.success]
    session.expire_all()
    assert session.exec(select(LoginAttempt).where(LoginAttempt.username == "v")).all() == []
    assert session.exec(select(AuditEntry).where(AuditEntry.action == "user.unlock")).one().actor_name == "boss"
    assert sessions.log_in(session=session, username="v", password=locked.password, ip="203.0.113.9").ok

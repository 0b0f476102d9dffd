"""AppTest of 用户管理's create form: a refused user keeps what was typed, a created
one is in the list at once and the form starts empty again."""

from core.auth.users import MIN_LENGTH
from db.models import Role
from i18n import t
from tests.support.apptest import run_app


def field(at, key: str):
    return next(w for w in at.text_input if w.label == t(key))


def test_refused_user_keeps_the_form_and_a_created_one_is_listed(org, make_user, as_user):
    as_user(make_user(Role.hq_admin, username="admin"))
    at = run_app("users.py")
    field(at, "users.username").input("zhangwei")
    field(at, "users.display_name").input("张伟")
    field(at, "users.password").input("short")
    at.button[[b.label for b in at.button].index(t("users.create"))].click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [t("users.password_too_short", minimum=MIN_LENGTH)]
    assert field(at, "users.username").value == "zhangwei"
    assert field(at, "users.display_name").value == "张伟"

    field(at, "users.password").input("long-enough-password")
    at.button[[b.label for b in at.button].index(t("users.create"))].click().run()
    assert not at.exception and not at.error
    assert at.success[0].value == t("users.created", username="zhangwei")
    assert "zhangwei" in list(at.dataframe[0].value[t("users.username")])
    assert field(at, "users.username").value == "" and field(at, "users.display_name").value == ""

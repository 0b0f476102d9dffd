"""Each role sees exactly its pages, every page re-checks permission, and a
forbidden page cannot be reached by switch_page."""

import pytest
from streamlit.testing.v1 import AppTest

from console.navigation import PAGES
from db.models import Role
from i18n import t
from tests.support.apptest import APP, run_app

# The roles table of DESIGN.md, as pages.
EVERYONE = {"overview", "stores", "bindings", "accounts", "capacity", "funnel"}
UPLOADERS = {"binding-upload", "import-history"}
HQ = {"alerts", "alert-settings"}
EXPECTED = {
    Role.hq_admin: EVERYONE | UPLOADERS | HQ | {"audit", "users", "api-keys"},
    Role.hq_operator: EVERYONE | UPLOADERS | HQ | {"audit"},
    Role.branch_manager: EVERYONE | UPLOADERS | {"audit"},
    Role.viewer: EVERYONE,
}


@pytest.mark.parametrize("role", list(Role))
def test_each_role_can_open_exactly_its_pages(role, org, make_user, as_user):
    user = make_user(role, org["north"] if role == Role.branch_manager else None)
    as_user(user)
    allowed = EXPECTED[role]
    for spec in PAGES:
        at = AppTest.from_file(APP, default_timeout=30)
        at.run()
        assert not at.exception, at.exception
        if spec.url_path in allowed:
            at.switch_page(spec.path)
            at.run()
            assert not at.exception, (spec.url_path, at.exception)
            assert at.title and at.title[0].value == t(spec.title_key)
        else:
            with pytest.raises(ValueError):
                at.switch_page(spec.path)


def test_without_session_only_the_login_link_shows(db_url, as_user):
    as_user(None)
    at = run_app()
    assert at.info[0].value == t("login.session_ended")
    assert any('href="/login"' in element.proto.body for element in at.get("html"))
    assert not at.dataframe


def test_disabled_user_session_ends(org, make_user, as_user, session):
    user = make_user(Role.hq_operator)
    as_user(user)
    assert run_app().title[0].value == t("overview.title")
    user.user.disabled = True
    session.add(user.user)
    session.commit()
    at = run_app()
    assert at.info[0].value == t("login.session_ended")


def test_branch_manager_sees_only_own_branch_stores(org, make_user, as_user):
    manager = make_user(Role.branch_manager, org["south"])
    as_user(manager)
    at = run_app("stores.py")
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table[t("stores.col.crm_store_id")]) == {"000201", "000202"}


def test_an_unreachable_database_is_one_chinese_message_without_a_trace(monkeypatch, as_user):
    from base.config import get_settings

    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    get_settings.cache_clear()
    as_user(None)
    at = run_app()
    assert not at.exception
    assert len(at.error) == 1
    assert at.error[0].value.startswith(t("app.database_unreachable", reason="")[:8])
    assert "Traceback" not in at.error[0].value


@pytest.mark.parametrize("page, role", [("users.py", Role.hq_operator), ("alert_settings.py", Role.viewer),
                                        ("binding_upload.py", Role.viewer), ("audit.py", Role.viewer)])
def test_a_page_run_directly_refuses_a_role_without_its_capability(page, role, org, make_user):
    """The menu is not the check: each page script checks the actor itself."""
    from pathlib import Path

    from console.ui.context import ACTOR_KEY

    user = make_user(role)
    at = AppTest.from_file(str(Path(APP).parents[1] / "pages" / page), default_timeout=30)
    at.session_state[ACTOR_KEY] = user.actor
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [t("error.permission_denied")]
    assert not at.dataframe and not at.button

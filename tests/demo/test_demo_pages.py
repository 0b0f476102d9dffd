"""Command one's promise: on the seeded demo, every demo login opens each page
of its menu without an error, and only those pages."""

import pytest
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from console.navigation import pages_for
from core.auth import sessions
from db.models import User
from demo import seed as demo
from i18n import t
from tests.support.apptest import APP


@pytest.fixture
def demo_users(session):
    created = demo.seed_demo(session=session)
    session.commit()
    return created


def test_every_demo_login_opens_every_page_of_its_menu(demo_users, session, monkeypatch):
    import streamlit as st

    assert {u.username for u in demo_users} == {"admin", "operator", "agency", "bj_manager", "sh_manager",
                                                "analyst"}
    for demo_user in demo_users:
        result = sessions.log_in(session=session, username=demo_user.username, password=demo_user.password)
        session.commit()
        assert result.ok, demo_user.username
        st.cache_resource.clear()
        monkeypatch.setattr("console.ui.context.read_session_token", lambda token=result.token: token)
        user = session.exec(select(User).where(User.username == demo_user.username)).one()
        for spec in pages_for(sessions.actor_for(user)):
            at = AppTest.from_file(APP, default_timeout=60)
            at.run()
            at.switch_page(spec.path)
            at.run()
            assert not at.exception, (demo_user.username, spec.url_path, at.exception)
            assert not at.error, (demo_user.username, spec.url_path, [e.value for e in at.error])
            assert at.title[0].value == t(spec.title_key)

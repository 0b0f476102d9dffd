"""Who is looking at the page, resolved from the session cookie on every rerun,
and the permission check every page makes again before it renders."""

from contextlib import AbstractContextManager

import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from console.web.cookies import SESSION_COOKIE, logout_token, unsign_session
from core.auth import sessions
from core.auth.permissions import Actor, Capability
from db.engine import get_engine, session_scope
from i18n import t

ACTOR_KEY = "_actor"


@st.cache_resource
def engine() -> Engine:
    """One engine per process, shared by all sessions (never a Session)."""
    return get_engine()


def db() -> AbstractContextManager[Session]:
    """A session for one action on the process's engine: committed on success, rolled back on error."""
    return session_scope(engine())


def read_session_token() -> str | None:
    return unsign_session(st.context.cookies.get(SESSION_COOKIE))


def resolve_actor() -> Actor | None:
    """Resolve the user from the cookie (called by app.py on every rerun)."""
    token = read_session_token()
    with db() as session:
        actor = sessions.resolve(session=session, token=token)
    st.session_state[ACTOR_KEY] = actor
    return actor


def logout_url() -> str:
    token = read_session_token()
    return f"/logout?t={logout_token(token)}" if token else "/login"


def page_actor(capability: Capability) -> Actor:
    """The current actor, after checking again that it may use this page."""
    actor = st.session_state.get(ACTOR_KEY)
    if actor is None:
        st.warning(t("login.required"))
        st.link_button(t("login.go_to_login"), "/login")
        st.stop()
    if not actor.can(capability):
        st.error(t("error.permission_denied"))
        st.stop()
    return actor

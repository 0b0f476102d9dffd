"""The Streamlit entry: resolve the user, build the navigation for their role, run the page."""

import html
import logging

import streamlit as st
import streamlit.config

from base.config import get_settings
from console.navigation import pages_for
from console.ui.context import db, engine, logout_url, resolve_actor
from core.auth.users import branch_code_of
from db.engine import DatabaseUnavailable, check_database
from i18n import t

log = logging.getLogger("console.app")

st.set_page_config(page_title=t("app.title"), page_icon=":material/support_agent:", layout="wide")

try:
    check_database(engine())
except DatabaseUnavailable as exc:
    st.error(t("app.database_unreachable", reason=str(exc).split(": ", 1)[-1][:200]))
    st.stop()

actor = resolve_actor()
if actor is None:
    st.title(t("app.title"))
    st.info(t("login.required"))
    st.link_button(t("login.go_to_login"), "/login", type="primary")
    st.stop()

groups: dict[str, list] = {}
for spec in pages_for(actor):
    groups.setdefault(t(spec.group), []).append(
        st.Page(spec.path, title=t(spec.title_key), icon=spec.icon, url_path=spec.url_path))
# Thirteen pages at most: all of them stay listed (no English "View more" button).
navigation = st.navigation(groups, expanded=True)

settings = get_settings()
with st.sidebar:
    st.markdown(f"**{t('app.title')}**")
    st.caption(t("nav.signed_in_as", name=actor.name, role=t(f"role.{actor.role.value}")))
    if actor.branch_scope is not None:
        with db() as session:
            st.caption(t("nav.branch_scope", branch=branch_code_of(session, actor.branch_scope)))
    if actor.expires_at is not None:
        from base.timeutil import format_display

        st.caption(t("nav.expires", date=format_display(actor.expires_at, "%Y-%m-%d")))
    # A same-tab link (st.link_button would open a new tab); the URL is ours, hex only.
    st.html(f'<a href="{html.escape(logout_url())}" target="_self" class="swc-logout">{t("logout.link")}</a>'
            '<style>.swc-logout{display:inline-block;padding:4px 12px;border:1px solid #ccc;border-radius:6px;'
            'color:inherit;text-decoration:none;font-size:14px}</style>')
if settings.uses_wecom_simulator:
    st.info(t("app.simulator_banner", base=settings.WECOM_API_BASE), icon=":material/science:")

try:
    navigation.run()
except Exception:
    # A bug, not bad input: the log gets the trace, the user one Chinese line.
    # AppTest still sees the exception, so a test can never pass over a broken page.
    log.exception("page %s failed", navigation.url_path)
    st.error(t("app.unexpected_error"))
    # (AppTest patches streamlit.config.get_option, which st.get_option does not see.)
    if streamlit.config.get_option("global.appTest"):
        raise

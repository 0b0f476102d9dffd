"""The Streamlit entry: resolve the user, build the navigation for their role, run the page."""

import html
import logging
from pathlib import Path
from urllib.parse import urlencode

import streamlit as st
import streamlit.config

from base.config import get_settings
from console.navigation import PAGES, PageSpec
from console.ui.context import db, engine, logout_url, resolve_actor
from console.ui.text import md
from console.ui.widget_text import chinese_widget_text
from console.web.page_gate import login_url
from core.auth.permissions import Actor
from core.auth.users import branch_code_of
from db.engine import DatabaseUnavailable, check_database
from i18n import t

log = logging.getLogger("console.app")

# A local image: a Material icon name would make the browser fetch the tab icon from Google's font host.
ICON = Path(__file__).parent / "assets" / "icon.png"
st.set_page_config(page_title=t("app.title"), page_icon=str(ICON), layout="wide")
chinese_widget_text()

try:
    check_database(engine())
except DatabaseUnavailable as exc:
    st.error(md("app.database_unreachable", reason=str(exc).split(": ", 1)[-1][:200]))
    st.stop()



def same_tab_link(url: str, label: str) -> None:
    """A link styled as a button that opens in this tab (st.link_button opens a new one).
    `url` is ours (a path, hex or %-escaped); the label from the catalog."""
    st.html(f'<a href="{html.escape(url)}" target="_self" class="swc-link">{html.escape(label)}</a>'
            '<style>.swc-link{display:inline-block;padding:4px 12px;border:1px solid #ccc;border-radius:6px;'
            'color:inherit;text-decoration:none;font-size:14px}</style>')


def session_ended(url_path: str):
    """What an open page shows once its session has ended (logged out elsewhere, expired, user
    disabled): the way back to this page through /login. (A fresh visit without a session never
    gets here: the page gate sends it to /login.)"""
    def ended() -> None:
        st.title(t("app.title"))
        st.info(t("login.session_ended"))
        query = urlencode(st.query_params.to_dict())
        here = f"/{url_path}" + (f"?{query}" if query else "")
        same_tab_link(login_url(here), t("login.go_to_login"))
    return ended


actor = resolve_actor()
if actor is None:
    st.navigation([st.Page(session_ended(""), title=t("app.title"), url_path="start", default=True),
                   *(st.Page(session_ended(spec.url_path), title=t(spec.title_key), url_path=spec.url_path)
                     for spec in PAGES)], position="hidden").run()
    st.stop()


def forbidden_page(spec: PageSpec, actor: Actor):
    """What a bookmarked page the role may not use shows instead of running it (and instead of
    Streamlit's English "Page not found")."""
    def forbidden() -> None:
        st.title(t("nav.forbidden_title"))
        st.error(t("nav.forbidden", page=t(spec.title_key), role=t(f"role.{actor.role.value}")))
    return forbidden


def start_page(first: st.Page):
    """The root URL, "/": opens the role's first page, so that page keeps its own URL (a bookmark
    of /overview works; Streamlit serves its default page at "/" only)."""
    def start() -> None:
        st.switch_page(first)
    return start


groups: dict[str, list] = {}
hidden: list = []
for spec in PAGES:
    if actor.can(spec.capability):
        groups.setdefault(t(spec.group), []).append(
            st.Page(spec.path, title=t(spec.title_key), icon=spec.icon, url_path=spec.url_path))
    else:
        hidden.append(st.Page(forbidden_page(spec, actor), title=t("nav.forbidden_title"),
                              url_path=spec.url_path, visibility="hidden"))
first_page = next(iter(groups.values()))[0]
start = st.Page(start_page(first_page), title=t("app.title"), url_path="start", default=True, visibility="hidden")
groups = {"": [start, *hidden], **groups}
navigation = st.navigation(groups, expanded=True)

settings = get_settings()
with st.sidebar:
    st.markdown(f"**{t('app.title')}**")
    st.caption(md("nav.signed_in_as", name=actor.name, role=t(f"role.{actor.role.value}")))
    if actor.branch_scope is not None:
        with db() as session:
            st.caption(md("nav.branch_scope", branch=branch_code_of(session, actor.branch_scope)))
    if actor.expires_at is not None:
        from base.timeutil import format_display

        st.caption(t("nav.expires", date=format_display(actor.expires_at, "%Y-%m-%d")))
    same_tab_link(logout_url(), t("logout.link"))
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

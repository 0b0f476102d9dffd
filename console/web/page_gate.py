"""The HTML shell of every console page, served by us rather than by Streamlit's
static files: a visitor without a live session is sent to /login (which brings
them back to the page afterwards), and the page is marked `lang="zh-CN"` so that
CJK fonts draw Simplified Chinese forms (Streamlit ships `lang="en"`, and Noto CJK
then falls back to its Japanese forms)."""

import re
from functools import cache
from pathlib import Path
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from streamlit import file_util

from console.navigation import PAGES
from console.web.cookies import SESSION_COOKIE, unsign_session
from core.auth import sessions
from db.engine import session_scope
from i18n import t

PAGE_PATHS = frozenset({"/", *(f"/{spec.url_path}" for spec in PAGES)})


def safe_next(target: str | None) -> str:
    """Where to go after login: one of our pages (query kept), else the start page.
    Anything else (another host, `//host`, a route) would make /login an open redirect."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path not in PAGE_PATHS:
        return "/"
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def login_url(target: str) -> str:
    target = safe_next(target)
    return "/login" if target == "/" else f"/login?next={quote(target, safe='')}"


@cache
def index_html() -> str:
    """Streamlit's index.html, in Chinese: language and the title shown while the app connects."""
    text = (Path(file_util.get_static_dir()) / "index.html").read_text(encoding="utf-8")
    text, count = re.subn(r'<html lang="[^"]*"', '<html lang="zh-CN"', text, count=1)
    if count != 1:
        raise RuntimeError("Streamlit's index.html has no <html lang> to set")
    return text.replace("<title>Streamlit</title>", f"<title>{t('app.title')}</title>", 1)


def _signed_in(token: str) -> bool:
    with session_scope() as session:
        return sessions.resolve(session=session, token=token) is not None


class PageGate:
    """ASGI middleware in front of Streamlit: only the page paths of console/navigation.py pass
    through it; Streamlit's own requests (/_stcore, /static, /media) and our routes go straight on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or scope["path"] not in PAGE_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = unsign_session(request.cookies.get(SESSION_COOKIE))
        if token is None or not await run_in_threadpool(_signed_in, token):
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response: HTMLResponse | RedirectResponse = RedirectResponse(
                login_url(here), status_code=303, headers={"Cache-Control": "no-store"})
        else:
            response = HTMLResponse(index_html(), headers={"Cache-Control": "no-cache"})
        await response(scope, receive, send)

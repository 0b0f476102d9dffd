"""The HTML shell of every console page, served by us rather than by Streamlit's
static files: a visitor without a live session is sent to /login (which brings
them back to the page afterwards), and the page is marked `lang="zh-CN"` so that
CJK fonts draw Simplified Chinese forms (Streamlit ships `lang="en"`, and Noto CJK
then falls back to its Japanese forms). A path that is none of our pages, routes
or Streamlit's own files gets a Chinese "page not found" (Streamlit would serve
its app there and show an English "Page not found" dialog over the start page)."""

import html
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send
from streamlit import file_util
from streamlit.url_util import STATIC_SERVING_ENDPOINT

from console.navigation import PAGES
from console.web.cookies import SESSION_COOKIE, unsign_session
from core.auth import sessions
from db.engine import session_scope
from i18n import t

PAGE_PATHS = frozenset({"/", *(f"/{spec.url_path}" for spec in PAGES)})
# What Streamlit serves besides the pages (its API, uploads, media, components, the frontend's bundles, the
# app's static folder) and the files at the root of its static folder (favicon.png, manifest.json; its
# index.html is the page shell, which only the page paths serve).
_STREAMLIT_PREFIXES = ("/_stcore/", "/media/", "/component/", "/static/", f"/{STATIC_SERVING_ENDPOINT.strip('/')}/")

_NOT_FOUND_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {app}</title>
<style>
body{{font-family:"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;background:#f5f6f8;margin:0}}
main{{max-width:420px;margin:12vh auto;background:#fff;padding:32px;border-radius:8px;
box-shadow:0 1px 4px rgba(0,0,0,.08)}}
h1{{font-size:20px;margin:0 0 12px}} p{{color:#444;font-size:15px;margin:0 0 24px}}
a{{display:inline-block;padding:8px 20px;background:#07c160;color:#fff;border-radius:4px;text-decoration:none}}
</style></head>
<body><main><h1>{title}</h1><p>{message}</p><a href="/">{home}</a></main></body></html>"""


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


@cache
def _streamlit_root_files() -> frozenset[str]:
    return frozenset(f"/{entry.name}" for entry in Path(file_util.get_static_dir()).iterdir()
                     if entry.is_file() and entry.name != "index.html")


def not_found_page() -> HTMLResponse:
    body = _NOT_FOUND_PAGE.format(title=html.escape(t("nav.not_found_title")), app=html.escape(t("app.title")),
                                  message=html.escape(t("nav.not_found")), home=html.escape(t("nav.not_found_home")))
    return HTMLResponse(body, status_code=404, headers={"Cache-Control": "no-store"})


def _signed_in(token: str) -> bool:
    with session_scope() as session:
        return sessions.resolve(session=session, token=token) is not None


class PageGate:
    """ASGI middleware in front of Streamlit: only the page paths of console/navigation.py pass
    through it; Streamlit's own requests (/_stcore, /static, /media) and our `routes` go straight on,
    and any other GET is answered "page not found"."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    def _passes_on(self, scope: Scope) -> bool:
        path = scope["path"]
        return (path.startswith(_STREAMLIT_PREFIXES) or path in _streamlit_root_files()
                or any(route.matches(scope)[0] != Match.NONE for route in self.routes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        if scope["path"] not in PAGE_PATHS:
            if self._passes_on(scope):
                await self.app(scope, receive, send)
            else:
                await not_found_page()(scope, receive, send)
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

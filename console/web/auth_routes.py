"""GET/POST /login (a small server-rendered form with a CSRF token) and /logout."""

import hmac
import html
import logging
import secrets

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from console.web.cookies import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    logout_token,
    sign_csrf,
    sign_session,
    unsign_csrf,
    unsign_session,
)
from core.auth import sessions
from db.engine import session_scope
from i18n import t

log = logging.getLogger("console.auth")

_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {app}</title>
<style>
body{{font-family:"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;background:#f5f6f8;margin:0}}
main{{max-width:360px;margin:12vh auto;background:#fff;padding:32px;border-radius:8px;
box-shadow:0 1px 4px rgba(0,0,0,.08)}}
h1{{font-size:20px;margin:0 0 4px}} p.sub{{color:#666;margin:0 0 24px;font-size:14px}}
label{{display:block;font-size:14px;margin:12px 0 4px}}
input[type=text],input[type=password]{{width:100%;box-sizing:border-box;padding:8px 10px;font-size:15px;
border:1px solid #ccd;border-radius:4px}}
button{{margin-top:20px;width:100%;padding:10px;font-size:15px;background:#07c160;color:#fff;border:0;
border-radius:4px;cursor:pointer}}
.error{{background:#fdecea;color:#a12;padding:8px 10px;border-radius:4px;font-size:14px}}
.notice{{background:#eef6ee;color:#264;padding:8px 10px;border-radius:4px;font-size:14px}}
</style></head>
<body><main>
<h1>{app}</h1><p class="sub">{title}</p>
{message}
<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{csrf}">
<label for="username">{username_label}</label>
<input id="username" name="username" type="text" autocomplete="username" value="{username}" required autofocus>
<label for="password">{password_label}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{submit}</button>
</form></main></body></html>"""


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _login_page(request: Request, *, error: str | None = None, notice: str | None = None,
                username: str = "", status_code: int = 200) -> HTMLResponse:
    csrf = secrets.token_urlsafe(24)
    message = ""
    if error:
        message = f'<p class="error" role="alert">{html.escape(error)}</p>'
    elif notice:
        message = f'<p class="notice">{html.escape(notice)}</p>'
    body = _PAGE.format(title=t("login.title"), app=t("app.title"), message=message, csrf=csrf,
                        username_label=t("login.username"), password_label=t("login.password"),
                        submit=t("login.submit"), username=html.escape(username))
    response = HTMLResponse(body, status_code=status_code,
                            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})
    response.set_cookie(CSRF_COOKIE, sign_csrf(csrf), httponly=True, samesite="strict", secure=_secure(request),
                        path="/login")
    return response


def login_form(request: Request) -> Response:
    notice = t("login.logged_out") if request.query_params.get("bye") else None
    return _login_page(request, notice=notice)


async def login_submit(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[:256]
    expected = unsign_csrf(request.cookies.get(CSRF_COOKIE))
    given = str(form.get("csrf_token", ""))
    if not expected or not hmac.compare_digest(expected, given):
        return _login_page(request, error=t("login.csrf_failed"), username=username, status_code=400)
    from starlette.concurrency import run_in_threadpool

    ip = request.client.host if request.client else ""
    result = await run_in_threadpool(_log_in, username, password, ip, request.headers.get("user-agent", ""))
    if not result.ok:
        log.info("login failed for %r from %s: %s", username, ip, result.error_key)
        return _login_page(request, error=t(result.error_key), username=username, status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, sign_session(result.token), httponly=True, samesite="lax",
                        secure=_secure(request), path="/")
    response.delete_cookie(CSRF_COOKIE, path="/login")
    return response


def _log_in(username: str, password: str, ip: str, user_agent: str) -> sessions.LoginResult:
    with session_scope() as session:
        return sessions.log_in(session=session, username=username, password=password, ip=ip,
                               user_agent=user_agent)


def logout(request: Request) -> Response:
    token = unsign_session(request.cookies.get(SESSION_COOKIE))
    given = request.query_params.get("t", "")
    if token and hmac.compare_digest(logout_token(token), given):
        with session_scope() as session:
            sessions.log_out(session=session, token=token)
        response = RedirectResponse("/login?bye=1", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return RedirectResponse("/", status_code=303)


ROUTES = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", logout, methods=["GET"]),
]

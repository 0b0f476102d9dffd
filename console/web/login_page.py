"""The server-rendered /login page and the session cookie, shared by password and WeCom login."""

import html
import secrets
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from base.config import get_settings
from console.web.cookies import CSRF_COOKIE, SESSION_COOKIE, sign_csrf, sign_session
from core.auth import sessions
from db.engine import session_scope
from i18n import t

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
a.wecom{{display:block;box-sizing:border-box;margin:0 0 8px;width:100%;padding:10px;font-size:15px;
text-align:center;background:#1e6fff;color:#fff;border-radius:4px;text-decoration:none}}
p.or{{color:#888;font-size:13px;text-align:center;margin:16px 0 0}}
.error{{background:#fdecea;color:#a12;padding:8px 10px;border-radius:4px;font-size:14px}}
.notice{{background:#eef6ee;color:#264;padding:8px 10px;border-radius:4px;font-size:14px}}
</style></head>
<body><main>
<h1>{app}</h1><p class="sub">{title}</p>
{message}
{wecom}
<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{csrf}">
<input type="hidden" name="next" value="{next_page}">
<label for="username">{username_label}</label>
<input id="username" name="username" type="text" autocomplete="username" value="{username}" required autofocus>
<label for="password">{password_label}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{submit}</button>
</form></main></body></html>"""


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def login_page(request: Request, *, error: str | None = None, notice: str | None = None,
               username: str = "", next_page: str = "/", status_code: int = 200) -> HTMLResponse:
    """/login with at most one message; reads the password-login setting, so call it off the event loop.
    `next_page` (already checked by `page_gate.safe_next`) is where a successful login goes."""
    with session_scope() as session:
        password_login = sessions.password_login_enabled(session=session)
    csrf = secrets.token_urlsafe(24)
    messages = []
    if error:
        messages.append(f'<p class="error" role="alert">{html.escape(error)}</p>')
    elif notice:
        messages.append(f'<p class="notice">{html.escape(notice)}</p>')
    if not password_login:
        messages.append(f'<p class="notice">{html.escape(t("login.password_login_off_notice"))}</p>')
    wecom = ""
    if get_settings().wecom_login_enabled:
        start = "/login/wecom" if next_page == "/" else f"/login/wecom?next={quote(next_page, safe='')}"
        wecom = (f'<a class="wecom" href="{html.escape(start)}">{html.escape(t("login.wecom_button"))}</a>'
                 f'<p class="or">{html.escape(t("login.or_password"))}</p>')
    body = _PAGE.format(title=t("login.title"), app=t("app.title"), message="\n".join(messages), wecom=wecom,
                        csrf=csrf, username_label=t("login.username"), password_label=t("login.password"),
                        submit=t("login.submit"), username=html.escape(username),
                        next_page=html.escape(next_page))
    response = HTMLResponse(body, status_code=status_code,
                            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})
    response.set_cookie(CSRF_COOKIE, sign_csrf(csrf), httponly=True, samesite="strict", secure=is_secure(request),
                        path="/login")
    return response


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, sign_session(token), httponly=True, samesite="lax",
                        secure=is_secure(request), path="/")

"""GET/POST /login (a small server-rendered form with a CSRF token) and /logout.
Inside the WeCom client, GET /login goes straight on to WeCom's OAuth2 login."""

import hmac
import logging

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from base.config import get_settings
from console.web import wecom_login
from console.web.cookies import CSRF_COOKIE, SESSION_COOKIE, logout_token, unsign_csrf, unsign_session
from console.web.login_page import login_page, set_session_cookie
from console.web.page_gate import safe_next
from core.auth import sessions
from db.engine import session_scope
from i18n import t

log = logging.getLogger("console.auth")


def login_form(request: Request) -> Response:
    logged_out = bool(request.query_params.get("bye"))
    # The WeCom workbench opens the console signed in; not right after a logout, which would undo it.
    if not logged_out and get_settings().wecom_login_enabled and wecom_login.inside_wecom(request):
        return wecom_login.redirect_to_wecom(request, oauth=True,
                                             next_page=safe_next(request.query_params.get("next")))
    return login_page(request, notice=t("login.logged_out") if logged_out else None,
                      next_page=safe_next(request.query_params.get("next")))


async def login_submit(request: Request) -> Response:
    form = await request.form()
    return await run_in_threadpool(_submit, request, form)


def _submit(request: Request, form: FormData) -> Response:
    username = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[:256]
    next_page = safe_next(str(form.get("next", "")))
    expected = unsign_csrf(request.cookies.get(CSRF_COOKIE))
    given = str(form.get("csrf_token", ""))
    if not expected or not hmac.compare_digest(expected, given):
        return login_page(request, error=t("login.csrf_failed"), username=username,
                          next_page=next_page, status_code=400)
    ip = request.client.host if request.client else ""
    result = _log_in(username, password, ip, request.headers.get("user-agent", ""))
    if not result.ok:
        log.info("login failed for %r from %s: %s", username, ip, result.error_key)
        return login_page(request, error=t(result.error_key, **result.error_params), username=username,
                          next_page=next_page, status_code=401)
    assert result.token is not None  # ok means a token
    response = RedirectResponse(next_page, status_code=303)
    set_session_cookie(response, request, result.token)
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

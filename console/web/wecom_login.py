"""GET /login/wecom (to WeCom's QR login) and GET /login/wecom/callback (WeCom's redirect back).

The state WeCom hands back must be the one this browser started: it travels in a
signed cookie scoped to /login/wecom that lives 5 minutes. The rules themselves
are in core.auth.wecom_login.
"""

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from base.config import get_settings
from console.web.cookies import WECOM_STATE_COOKIE, sign_wecom_state, unsign_wecom_state
from console.web.login_page import is_secure, login_page, set_session_cookie
from console.web.page_gate import safe_next
from core.auth import wecom_login
from db.engine import session_scope
from i18n import t

STATE_COOKIE_PATH = "/login/wecom"
# The page to open once WeCom sends the user back (checked again by `safe_next` when read).
NEXT_COOKIE = "swc_wecom_next"


def inside_wecom(request: Request) -> bool:
    """The WeCom client's browser names itself `wxwork` in its user agent."""
    return "wxwork" in request.headers.get("user-agent", "").lower()


def redirect_to_wecom(request: Request, *, oauth: bool, next_page: str = "/") -> Response:
    """A new state bound to this browser, then WeCom's QR login page (PC) or OAuth2 (inside the WeCom client);
    `next_page` is where the callback sends the user."""
    with session_scope() as session:
        state = wecom_login.start_login(session=session)
    target = wecom_login.oauth_url(state) if oauth else wecom_login.qr_login_url(state)
    response = RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})
    response.set_cookie(WECOM_STATE_COOKIE, sign_wecom_state(state),
                        max_age=int(wecom_login.STATE_LIFETIME.total_seconds()), httponly=True, samesite="lax",
                        secure=is_secure(request), path=STATE_COOKIE_PATH)
    response.set_cookie(NEXT_COOKIE, safe_next(next_page), max_age=int(wecom_login.STATE_LIFETIME.total_seconds()),
                        httponly=True, samesite="lax", secure=is_secure(request), path=STATE_COOKIE_PATH)
    return response


def start(request: Request) -> Response:
    if not get_settings().wecom_login_enabled:
        return login_page(request, error=t("login.wecom_disabled"), status_code=404)
    return redirect_to_wecom(request, oauth=inside_wecom(request), next_page=request.query_params.get("next", "/"))


def callback(request: Request) -> Response:
    if not get_settings().wecom_login_enabled:
        return login_page(request, error=t("login.wecom_disabled"), status_code=404)
    ip = request.client.host if request.client else ""
    with session_scope() as session, wecom_login.login_client() as client:
        result = wecom_login.finish_login(
            session=session, state=request.query_params.get("state", "")[:128],
            cookie_state=unsign_wecom_state(request.cookies.get(WECOM_STATE_COOKIE)),
            code=request.query_params.get("code", "")[:512], client=client, ip=ip,
            user_agent=request.headers.get("user-agent", ""))
    # The state cookie stays until it expires: the state is spent in the database, and a
    # replay from this browser (the back button) is then told so rather than called forged.
    if result.token is None:
        status = 503 if result.error_key in wecom_login.UNAVAILABLE else \
            400 if result.error_key in wecom_login.BAD_REQUEST else 401
        return login_page(request, error=t(str(result.error_key), **result.error_params), status_code=status)
    response = RedirectResponse(safe_next(request.cookies.get(NEXT_COOKIE)), status_code=303)
    set_session_cookie(response, request, result.token)
    response.delete_cookie(NEXT_COOKIE, path=STATE_COOKIE_PATH)
    return response


ROUTES = [
    Route("/login/wecom", start, methods=["GET"]),
    Route("/login/wecom/callback", callback, methods=["GET"]),
]

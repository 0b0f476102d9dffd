"""Login by WeCom: the QR code on a PC (wwlogin SSO) or the OAuth2 redirect inside the WeCom client.

`start_login` issues a random single-use `state`, which the web layer binds to the
browser with a short-lived signed cookie; `finish_login` spends it, exchanges the
code once, checks that the member is active and linked to a console user who may
log in, and opens the very session password login opens. Each refusal is one
catalog key and leaves no session behind.
"""

import hmac
import logging
import secrets
import string
from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from base.config import get_settings
from base.timeutil import utcnow
from core import audit
from core.auth import sessions
from core.auth.sessions import LoginResult
from core.wecom import identity
from core.wecom.client import BUSY, THROTTLED, RetryPolicy, WeComClient, WeComError
from db.models import User, WeComLoginState

log = logging.getLogger("console.auth")

STATE_LIFETIME = timedelta(minutes=5)
STATE_LENGTH = 32
_STATE_ALPHABET = string.ascii_letters + string.digits
# Spent and expired states stay this long (to tell a replay from a forgery), then the next login purges them.
STATE_RETENTION = timedelta(days=1)
CALLBACK_PATH = "/login/wecom/callback"
# A person is waiting: give up on WeCom after a few seconds rather than the sidecar's minute of backoff.
LOGIN_RETRY = RetryPolicy(base_seconds=0.2, max_seconds=1.0, max_attempts=3)
LOGIN_TIMEOUT_SECONDS = 5.0

# Refusals caused by WeCom not answering, not by the person: the web layer answers 503.
UNAVAILABLE = frozenset({"login.wecom_unreachable", "login.wecom_unavailable"})
# Refusals of the login request itself (state or code): 400. Every other refusal is 401.
BAD_REQUEST = frozenset({"login.wecom_state_forged", "login.wecom_state_used", "login.wecom_state_expired",
                         "login.wecom_code_invalid"})


def login_client() -> WeComClient:
    settings = get_settings()
    return WeComClient(settings.WECOM_API_BASE, settings.WECOM_CORP_ID, settings.WECOM_SECRET,
                       timeout=LOGIN_TIMEOUT_SECONDS, retry=LOGIN_RETRY)


def callback_url() -> str:
    return get_settings().CONSOLE_BASE_URL.rstrip("/") + CALLBACK_PATH


def qr_login_url(state: str) -> str:
    """WeCom's web QR login page for the self-built app (WECOM.md: Self-built app)."""
    settings = get_settings()
    query = urlencode({"login_type": "CorpApp", "appid": settings.WECOM_CORP_ID, "agentid": settings.WECOM_AGENT_ID,
                       "redirect_uri": callback_url(), "state": state})
    return f"{settings.WECOM_LOGIN_BASE.rstrip('/')}/wwlogin/sso/login?{query}"


def oauth_url(state: str) -> str:
    """The OAuth2 authorize URL the WeCom client follows without asking the member anything."""
    settings = get_settings()
    query = urlencode({"appid": settings.WECOM_CORP_ID, "redirect_uri": callback_url(), "response_type": "code",
                       "scope": "snsapi_base", "state": state, "agentid": settings.WECOM_AGENT_ID})
    return f"{settings.WECOM_OAUTH_BASE.rstrip('/')}/connect/oauth2/authorize?{query}#wechat_redirect"


def start_login(*, session: Session) -> str:
    """A new single-use state, stored; the caller binds it to the browser."""
    now = utcnow()
    session.exec(delete(WeComLoginState).where(col(WeComLoginState.created_at) < now - STATE_RETENTION))
    state = "".join(secrets.choice(_STATE_ALPHABET) for _ in range(STATE_LENGTH))
    session.add(WeComLoginState(state=state, created_at=now))
    return state


def linked_user(*, session: Session, userid: str) -> User | None:
    return session.exec(select(User).where(func.lower(User.wecom_userid) == userid.strip().lower())).first()


def finish_login(*, session: Session, state: str, cookie_state: str | None, code: str, client: WeComClient,
                 ip: str = "", user_agent: str = "") -> LoginResult:
    """WeCom's redirect back: `state` and `code` from the query, `cookie_state` from the
    browser's signed cookie. Returns the new session's token, or the refusal's key."""
    now = utcnow()
    refusal = _spend_state(session, state, cookie_state, now)
    if refusal:
        return _refused(refusal, ip=ip, detail=f"state {state[:40]!r}")
    # The state is spent for good before WeCom is asked: nothing below can make it
    # usable again, and no write lock is held across the calls to WeCom.
    session.commit()
    try:
        owner = identity.code_owner(client, code)
        if owner.userid is None:
            return _refused("login.wecom_not_member", ip=ip, detail=f"openid {owner.openid!r}")
        status = identity.member_status(client, owner.userid)
    except WeComError as exc:
        return _wecom_failed(exc, ip=ip)
    if status != identity.ACTIVE:
        return _refused("login.wecom_member_inactive", ip=ip, detail=f"userid {owner.userid!r} status {status}")
    user = linked_user(session=session, userid=owner.userid)
    if user is None:
        return _refused("login.wecom_not_linked", ip=ip, detail=f"userid {owner.userid!r}", userid=owner.userid)
    if not sessions.user_can_log_in(user, now):
        return _refused("login.account_inactive", ip=ip, detail=f"user {user.username!r}")
    assert user.id is not None  # a loaded row has its key
    token = sessions.open_session(session=session, user=user, ip=ip, user_agent=user_agent, now=now)
    audit.record(session=session, actor=sessions.actor_for(user), action="auth.login_wecom", entity_type="user",
                 entity_id=user.id, branch_id=user.branch_id, after={"wecom_userid": owner.userid})
    log.info("wecom login: user %r (member %r) from %s", user.username, owner.userid, ip)
    return LoginResult(token)


def _spend_state(session: Session, state: str, cookie_state: str | None, now: datetime) -> str | None:
    """Mark the state used, atomically; or the reason it cannot be."""
    if not state or not cookie_state or not hmac.compare_digest(state.encode(), cookie_state.encode()):
        return "login.wecom_state_forged"
    spent = session.exec(
        update(WeComLoginState)
        .where(col(WeComLoginState.state) == state, col(WeComLoginState.used_at).is_(None),
               col(WeComLoginState.created_at) > now - STATE_LIFETIME)
        .values(used_at=now)
    )
    if spent.rowcount == 1:
        return None
    row = session.get(WeComLoginState, state)
    if row is None:
        return "login.wecom_state_forged"
    return "login.wecom_state_used" if row.used_at is not None else "login.wecom_state_expired"


def _wecom_failed(exc: WeComError, *, ip: str) -> LoginResult:
    if exc.errcode == identity.INVALID_CODE:
        return _refused("login.wecom_code_invalid", ip=ip, detail=str(exc))
    if exc.errcode == identity.USERID_NOT_FOUND:
        return _refused("login.wecom_not_member", ip=ip, detail=str(exc))
    if exc.errcode is None or exc.errcode == BUSY or exc.errcode in THROTTLED:
        log.warning("wecom login failed: WeCom unreachable (%s)", exc)
        return LoginResult(None, "login.wecom_unreachable")
    log.warning("wecom login failed: WeCom refused (%s)", exc)
    return LoginResult(None, "login.wecom_unavailable", {"errcode": str(exc.errcode)})


def _refused(key: str, *, ip: str, detail: str, **params: str) -> LoginResult:
    log.info("wecom login refused from %s: %s (%s)", ip, key, detail)
    return LoginResult(None, key, params)

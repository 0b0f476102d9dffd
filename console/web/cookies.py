"""The signed session cookie, CSRF tokens and WeCom login states (itsdangerous, CONSOLE_SECRET_KEY)."""

import hashlib
import hmac

from itsdangerous import BadSignature, URLSafeSerializer

from base.config import get_settings

SESSION_COOKIE = "swc_session"
CSRF_COOKIE = "swc_csrf"
# Binds a WeCom login's state to the browser that started it (path /login/wecom, 5 minutes).
WECOM_STATE_COOKIE = "swc_wecom_state"


def _serializer(purpose: str) -> URLSafeSerializer:
    return URLSafeSerializer(get_settings().secret_key, salt=f"store-wecom-console.{purpose}")


def _unsign(purpose: str, value: str | None) -> str | None:
    if not value:
        return None
    try:
        token = _serializer(purpose).loads(value)
    except BadSignature:
        return None
    return token if isinstance(token, str) else None


def sign_session(token: str) -> str:
    return _serializer("session").dumps(token)


def unsign_session(value: str | None) -> str | None:
    """The session token from a cookie value, or None when absent or tampered with."""
    return _unsign("session", value)


def sign_csrf(token: str) -> str:
    return _serializer("csrf").dumps(token)


def unsign_csrf(value: str | None) -> str | None:
    return _unsign("csrf", value)


def sign_wecom_state(state: str) -> str:
    return _serializer("wecom-login-state").dumps(state)


def unsign_wecom_state(value: str | None) -> str | None:
    """The WeCom login state this browser started, or None when absent or tampered with."""
    return _unsign("wecom-login-state", value)


def logout_token(session_token: str) -> str:
    """A per-session token the logout link carries, so that another site cannot
    log a user out with a plain link."""
    key = get_settings().secret_key.encode()
    return hmac.new(key, b"logout:" + session_token.encode(), hashlib.sha256).hexdigest()[:32]

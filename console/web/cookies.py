"""The signed session cookie and CSRF tokens (itsdangerous, CONSOLE_SECRET_KEY)."""

import hashlib
import hmac

from itsdangerous import BadSignature, URLSafeSerializer

from base.config import get_settings

SESSION_COOKIE = "swc_session"
CSRF_COOKIE = "swc_csrf"


def _serializer(purpose: str) -> URLSafeSerializer:
    return URLSafeSerializer(get_settings().secret_key, salt=f"store-wecom-console.{purpose}")


def sign_session(token: str) -> str:
    return _serializer("session").dumps(token)


def unsign_session(value: str | None) -> str | None:
    """The session token from a cookie value, or None when absent or tampered with."""
    if not value:
        return None
    try:
        token = _serializer("session").loads(value)
    except BadSignature:
        return None
    return token if isinstance(token, str) else None


def sign_csrf(token: str) -> str:
    return _serializer("csrf").dumps(token)


def unsign_csrf(value: str | None) -> str | None:
    if not value:
        return None
    try:
        token = _serializer("csrf").loads(value)
    except BadSignature:
        return None
    return token if isinstance(token, str) else None


def logout_token(session_token: str) -> str:
    """A per-session token the logout link carries, so that another site cannot
    log a user out with a plain link."""
    key = get_settings().secret_key.encode()
    return hmac.new(key, b"logout:" + session_token.encode(), hashlib.sha256).hexdigest()[:32]

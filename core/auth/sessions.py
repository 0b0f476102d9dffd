"""Login, lockout and server-side sessions.

The browser holds a signed random token (see console.web.cookies); the database
holds its SHA-256. A session ends after 12 h without use, on logout, or when the
user is disabled or past their expiry. Password login and WeCom login
(core.auth.wecom_login) both open it through `open_session`.
"""

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from base.timeutil import utcnow
from core import settings_store
from core.auth.passwords import verify_password
from core.auth.permissions import Actor
from db.models import LoginAttempt, LoginSession, Role, User

IDLE_TIMEOUT = timedelta(hours=12)
LOCKOUT_WINDOW = timedelta(minutes=15)
LOCKOUT_FAILURES = 5
PASSWORD_LOGIN_SETTING = "auth.password_login"
# A session's last_seen_at is written at most this often, not on every rerun.
TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class LoginResult:
    token: str | None
    error_key: str | None = None
    error_params: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.token is not None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def user_can_log_in(user: User, now: datetime) -> bool:
    return not user.disabled and (user.expires_at is None or user.expires_at > now)


def is_locked_out(*, session: Session, username: str, now: datetime | None = None) -> bool:
    now = now or utcnow()
    failures = session.exec(
        select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.username == username.strip().lower(),
            LoginAttempt.succeeded == False,  # noqa: E712
            LoginAttempt.attempted_at > now - LOCKOUT_WINDOW,
        )
    ).one()
    return failures >= LOCKOUT_FAILURES


def find_user(*, session: Session, username: str) -> User | None:
    return session.exec(select(User).where(func.lower(User.username) == username.strip().lower())).first()


def log_in(*, session: Session, username: str, password: str, ip: str = "", user_agent: str = "") -> LoginResult:
    """Check the password and open a session. Every failure says the same thing
    to the user, except lockout and a disabled/expired account, and takes as long
    whether the user exists or not. With password login turned off only an
    hq_admin gets in (break-glass); the others are told to scan with WeCom."""
    now = utcnow()
    key = username.strip().lower()
    user = find_user(session=session, username=key) if key else None
    password_ok = verify_password(user.password_hash if user else None, password)
    if is_locked_out(session=session, username=key, now=now):
        session.add(LoginAttempt(username=key[:64], succeeded=False, ip=ip))
        return LoginResult(None, "login.locked_out")
    if user is None or not password_ok:
        session.add(LoginAttempt(username=key[:64], succeeded=False, ip=ip))
        return LoginResult(None, "login.bad_credentials")
    if not user_can_log_in(user, now):
        session.add(LoginAttempt(username=key[:64], succeeded=False, ip=ip))
        return LoginResult(None, "login.account_inactive")
    # Checked after the password, so the refusal tells a stranger nothing about roles.
    if user.role != Role.hq_admin and not password_login_enabled(session=session):
        session.add(LoginAttempt(username=key[:64], succeeded=False, ip=ip))
        return LoginResult(None, "login.password_login_off")
    session.add(LoginAttempt(username=key[:64], succeeded=True, ip=ip))
    return LoginResult(open_session(session=session, user=user, ip=ip, user_agent=user_agent, now=now))


def password_login_enabled(*, session: Session) -> bool:
    return bool(settings_store.effective(session=session, key=PASSWORD_LOGIN_SETTING))


def open_session(*, session: Session, user: User, ip: str, user_agent: str, now: datetime | None = None) -> str:
    """A new server-side session for a user already checked; returns the token the cookie carries."""
    assert user.id is not None  # a loaded row has its key
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(LoginSession(token_hash=hash_token(token), user_id=user.id, ip=ip[:64],
                             user_agent=user_agent[:300], created_at=now, last_seen_at=now))
    return token


def resolve(*, session: Session, token: str | None) -> Actor | None:
    """The actor behind a session token, or None when the session is unknown,
    revoked, idle too long, or its user may no longer log in."""
    if not token:
        return None
    now = utcnow()
    row = session.exec(select(LoginSession).where(LoginSession.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None or now - row.last_seen_at > IDLE_TIMEOUT:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user_can_log_in(user, now):
        row.revoked_at = now
        session.add(row)
        return None
    if now - row.last_seen_at > TOUCH_INTERVAL:
        row.last_seen_at = now
        session.add(row)
    return actor_for(user)


def actor_for(user: User) -> Actor:
    return Actor(name=user.username, role=Role(user.role), user_id=user.id,
                 branch_id=user.branch_id, expires_at=user.expires_at)


def log_out(*, session: Session, token: str | None) -> None:
    if not token:
        return
    session.exec(
        update(LoginSession).where(col(LoginSession.token_hash) == hash_token(token),
                                   col(LoginSession.revoked_at).is_(None)).values(revoked_at=utcnow())
    )


def revoke_all_for_user(*, session: Session, user_id: int) -> None:
    session.exec(
        update(LoginSession).where(col(LoginSession.user_id) == user_id,
                                   col(LoginSession.revoked_at).is_(None)).values(revoked_at=utcnow())
    )

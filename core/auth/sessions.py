"""Login, lockout and server-side sessions.

The browser holds a signed random token (see console.web.cookies); the database
holds its SHA-256. A session ends after 12 h without use, 7 days after login
(however much it is used), on logout, or when the
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
from core import audit, settings_store
from core.auth import lockout
from core.auth.passwords import PasswordCheckBusy, verify_password
from core.auth.permissions import Actor
from db.models import LoginAttempt, LoginSession, Role, User

IDLE_TIMEOUT = timedelta(hours=12)
# A stolen or forgotten cookie kept alive by use still ends: the user logs in again.
ABSOLUTE_LIFETIME = timedelta(days=7)
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


def find_user(*, session: Session, username: str) -> User | None:
    return session.exec(select(User).where(func.lower(User.username) == username.strip().lower())).first()


def log_in(*, session: Session, username: str, password: str, ip: str = "", user_agent: str = "") -> LoginResult:
    """Check the password and open a session. Every failure says the same thing
    to the user, except a hold (core.auth.lockout), a busy server and a
    disabled/expired account, and takes as long whether the user exists or not.
    With password login turned off only an hq_admin gets in (break-glass); the
    others are told to scan with WeCom. Commits the caller's session before hashing."""
    now = utcnow()
    key = username.strip().lower()
    # Held attempts are neither checked nor counted (core.auth.lockout).
    held = lockout.hold(session=session, username=key[:64], ip=ip, now=now)
    if held is not None:
        return LoginResult(None, held.key, held.params)
    user = find_user(session=session, username=key) if key else None
    password_hash = user.password_hash if user else None
    # Ends the read transaction first: no database connection waits while argon2
    # runs or waits its turn (a burst of logins would otherwise empty the pool).
    session.commit()
    try:
        password_ok = verify_password(password_hash, password)
    except PasswordCheckBusy:
        return LoginResult(None, "login.busy")
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
    assert user.id is not None  # a loaded row has its key
    audit.record(session=session, actor=actor_for(user), action="auth.login", entity_type="user", entity_id=user.id,
                 branch_id=user.branch_id, after={"ip": ip[:64]})
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
    revoked, idle too long, past its lifetime, or its user may no longer log in."""
    if not token:
        return None
    now = utcnow()
    row = session.exec(select(LoginSession).where(LoginSession.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None or now - row.last_seen_at > IDLE_TIMEOUT \
            or now - row.created_at > ABSOLUTE_LIFETIME:
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
    """End the session (audited, when it was still open)."""
    if not token:
        return
    row = session.exec(select(LoginSession).where(LoginSession.token_hash == hash_token(token),
                                                  col(LoginSession.revoked_at).is_(None))).first()
    user = session.get(User, row.user_id) if row is not None else None
    if row is None or user is None or user.id is None:
        return
    row.revoked_at = utcnow()
    session.add(row)
    audit.record(session=session, actor=actor_for(user), action="auth.logout", entity_type="user",
                 entity_id=user.id, branch_id=user.branch_id)


def revoke_all_for_user(*, session: Session, user_id: int) -> None:
    session.exec(
        update(LoginSession).where(col(LoginSession.user_id) == user_id,
                                   col(LoginSession.revoked_at).is_(None)).values(revoked_at=utcnow())
    )

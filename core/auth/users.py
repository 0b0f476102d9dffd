"""Managing console users (hq_admin only)."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit, InvalidInput, NotFound
from base.timeutil import utcnow
from core import audit
from core.auth import lockout
from core.auth.passwords import MIN_LENGTH, hash_password
from core.auth.permissions import Actor, Capability, require
from core.auth.sessions import find_user, revoke_all_for_user
from core.auth.wecom_login import linked_user
from core.conflicts import settled_races
from core.directory.accounts import USERID_RE
from db.models import Branch, Role, User

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
# The database's last word on "one console user per WeCom member" (db/models/users.py).
WECOM_USERID_INDEX = "uq_user_wecom_userid_ci"


@dataclass(frozen=True)
class UserCreate:
    username: str
    role: str
    password: str
    display_name: str = ""
    branch_code: str | None = None
    expires_at: datetime | None = None
    wecom_userid: str | None = None


def _snapshot(user: User, branch_code: str | None) -> dict:
    return {"username": user.username, "display_name": user.display_name, "role": user.role,
            "branch": branch_code, "expires_at": user.expires_at, "disabled": user.disabled,
            "wecom_userid": user.wecom_userid}


def _branch_id(session: Session, code: str | None) -> int | None:
    if not code:
        return None
    branch = session.exec(select(Branch).where(Branch.code == code.strip())).first()
    if branch is None:
        raise InvalidInput("users.unknown_branch", branch=code)
    return branch.id


def _check_role_and_branch(role: str, branch_id: int | None) -> Role:
    try:
        parsed = Role(role)
    except ValueError:
        raise InvalidInput("users.unknown_role", role=role) from None
    if parsed == Role.branch_manager and branch_id is None:
        raise InvalidInput("users.branch_required")
    return parsed


def _check_password(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidInput("users.password_too_short", minimum=MIN_LENGTH)


def _check_wecom_userid(session: Session, userid: str | None, user_id: int | None) -> str | None:
    """The member to link (None: no link), refused when another user is linked to it already."""
    userid = (userid or "").strip()
    if not userid:
        return None
    if not USERID_RE.match(userid):
        raise InvalidInput("users.bad_wecom_userid", userid=userid)
    holder = linked_user(session=session, userid=userid)
    if holder is not None and holder.id != user_id:
        raise InvalidInput("users.wecom_userid_taken", userid=userid)
    return userid


@contextmanager
def _unique_fields(username: str, wecom_userid: str | None) -> Iterator[None]:
    """Another transaction may take the username or the member between the check and the
    write; the unique index then refuses it with the same words the check uses."""
    try:
        with settled_races():
            yield
    except ConcurrentEdit as exc:
        if not isinstance(exc.__cause__, IntegrityError):
            raise
        if WECOM_USERID_INDEX in str(exc.__cause__.orig):
            raise InvalidInput("users.wecom_userid_taken", userid=wecom_userid) from exc
        raise InvalidInput("users.username_taken", username=username) from exc


def create_user(*, session: Session, actor: Actor, data: UserCreate) -> User:
    require(actor, Capability.manage_users)
    username = data.username.strip()
    if not USERNAME_RE.match(username):
        raise InvalidInput("users.bad_username")
    if find_user(session=session, username=username) is not None:
        raise InvalidInput("users.username_taken", username=username)
    branch_id = _branch_id(session, data.branch_code)
    role = _check_role_and_branch(data.role, branch_id)
    _check_password(data.password)
    wecom_userid = _check_wecom_userid(session, data.wecom_userid, None)
    user = User(username=username, display_name=data.display_name.strip(), role=role.value,
                branch_id=branch_id, expires_at=data.expires_at, password_hash=hash_password(data.password),
                wecom_userid=wecom_userid)
    session.add(user)
    with _unique_fields(username, wecom_userid):
        session.flush()
    assert user.id is not None  # assigned by the flush
    audit.record(session=session, actor=actor, action="user.create", entity_type="user", entity_id=user.id,
                 branch_id=branch_id, after=_snapshot(user, data.branch_code))
    return user


@dataclass(frozen=True)
class UserUpdate:
    role: str
    display_name: str
    branch_code: str | None
    expires_at: datetime | None
    disabled: bool
    # The linked WeCom member after the update; None unlinks.
    wecom_userid: str | None = None


def update_user(*, session: Session, actor: Actor, user_id: int, expected_version: int, data: UserUpdate) -> User:
    """Change role, branch, expiry, disabled or the linked WeCom member; refuses if someone
    else changed the user since it was read. Disabling or expiring ends the user's sessions."""
    require(actor, Capability.manage_users)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound()
    if user.version != expected_version:
        raise ConcurrentEdit()
    if user.id == actor.user_id and (data.disabled or data.role != Role.hq_admin):
        raise InvalidInput("users.cannot_demote_self")
    before = _snapshot(user, branch_code_of(session, user.branch_id))
    branch_id = _branch_id(session, data.branch_code)
    role = _check_role_and_branch(data.role, branch_id)
    wecom_userid = _check_wecom_userid(session, data.wecom_userid, user_id)
    user.role = role.value
    user.display_name = data.display_name.strip()
    user.branch_id = branch_id
    user.expires_at = data.expires_at
    user.disabled = data.disabled
    user.wecom_userid = wecom_userid
    with _unique_fields(user.username, wecom_userid):
        _bump(session, user, expected_version)
    if user.disabled or (user.expires_at is not None and user.expires_at <= utcnow()):
        revoke_all_for_user(session=session, user_id=user_id)
    audit.record(session=session, actor=actor, action="user.update", entity_type="user", entity_id=user_id,
                 branch_id=branch_id, before=before, after=_snapshot(user, data.branch_code))
    return user


def reset_password(*, session: Session, actor: Actor, user_id: int, expected_version: int, password: str) -> User:
    require(actor, Capability.manage_users)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound()
    if user.version != expected_version:
        raise ConcurrentEdit()
    _check_password(password)
    user.password_hash = hash_password(password)
    _bump(session, user, expected_version)
    revoke_all_for_user(session=session, user_id=user_id)
    audit.record(session=session, actor=actor, action="user.reset_password", entity_type="user",
                 entity_id=user_id, branch_id=user.branch_id)
    return user


def unlock_user(*, session: Session, actor: Actor, username: str) -> int:
    """Let a username log in again from every address at once (its failed attempts
    are forgotten); answers how many failures were cleared. Audited."""
    require(actor, Capability.manage_users)
    user = find_user(session=session, username=username)
    if user is None:
        raise NotFound("users.not_found", username=username.strip())
    assert user.id is not None  # a loaded row has its key
    cleared = lockout.clear_failures(session=session, username=user.username)
    audit.record(session=session, actor=actor, action="user.unlock", entity_type="user", entity_id=user.id,
                 branch_id=user.branch_id, before={"failed_attempts": cleared})
    return cleared


def _bump(session: Session, user: User, expected_version: int) -> None:
    """Write the user only if its version is still the one read (compare-and-set
    in the UPDATE itself, so two admins cannot both win)."""
    from sqlalchemy import update

    values = {
        "role": user.role, "display_name": user.display_name, "branch_id": user.branch_id,
        "expires_at": user.expires_at, "disabled": user.disabled, "password_hash": user.password_hash,
        "wecom_userid": user.wecom_userid,
        "version": expected_version + 1, "updated_at": utcnow(),
    }
    result = session.exec(update(User).where(col(User.id) == user.id, col(User.version) == expected_version)
                          .values(**values))
    if result.rowcount != 1:
        session.rollback()
        raise ConcurrentEdit()
    session.expire(user)


def branch_code_of(session: Session, branch_id: int | None) -> str | None:
    if branch_id is None:
        return None
    branch = session.get(Branch, branch_id)
    return branch.code if branch else None


def list_users(*, session: Session, actor: Actor, search: str = "") -> list[tuple[User, str | None]]:
    require(actor, Capability.manage_users)
    query = select(User, Branch.code).join(Branch, col(User.branch_id) == Branch.id, isouter=True)
    if search.strip():
        pattern = f"%{search.strip().lower()}%"
        query = query.where(func.lower(User.username).like(pattern) | func.lower(User.display_name).like(pattern))
    return [(u, code) for u, code in session.exec(query.order_by(User.username)).all()]

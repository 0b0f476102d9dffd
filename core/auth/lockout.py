"""When a password attempt is held back, so that guessing is slow but nobody can
lock someone else out.

- Per username and client address: 5 failures within 15 minutes hold that address
  for that username until the oldest of them is 15 minutes old. Another address
  (the user at their own desk) is not held.
- Per username, from every address together (guessing spread over many addresses):
  past 20 failures within an hour, each further attempt waits 1, 2, 4 … seconds
  after the previous failure, at most a minute: a throttle, never a lock.
- An attempt made while held is answered without checking the password and is not
  counted, so hammering a held username does not extend the hold.
- HQ's administrator (users page) or `python -m console unlock-user` clears a
  username's failures at once.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from core.auth.permissions import Actor, Capability, require
from db.models import LoginAttempt

ADDRESS_WINDOW = timedelta(minutes=15)
ADDRESS_FAILURES = 5
USERNAME_WINDOW = timedelta(hours=1)
USERNAME_FREE_FAILURES = 20
USERNAME_MAX_WAIT = timedelta(minutes=1)


@dataclass(frozen=True)
class Hold:
    """Why an attempt is not checked now: a message key and its parameters."""
    key: str
    params: dict[str, str] = field(default_factory=dict)


def _failures(session: Session, username: str, since: datetime, ip: str | None = None) -> list[datetime]:
    """Failure times, newest first."""
    query = select(LoginAttempt.attempted_at).where(
        LoginAttempt.username == username, LoginAttempt.succeeded == False,  # noqa: E712
        col(LoginAttempt.attempted_at) > since)
    if ip is not None:
        query = query.where(LoginAttempt.ip == ip[:64])
    return list(session.exec(query.order_by(col(LoginAttempt.attempted_at).desc())).all())


def hold(*, session: Session, username: str, ip: str, now: datetime) -> Hold | None:
    """The hold on an attempt for `username` (lower-cased) from `ip` now, or None."""
    at_address = _failures(session, username, now - ADDRESS_WINDOW, ip)[:ADDRESS_FAILURES]
    if len(at_address) >= ADDRESS_FAILURES:
        until = at_address[-1] + ADDRESS_WINDOW
        return Hold("login.locked_out", {"minutes": str(max(1, math.ceil((until - now).total_seconds() / 60)))})
    everywhere = _failures(session, username, now - USERNAME_WINDOW)
    if len(everywhere) > USERNAME_FREE_FAILURES:
        wait = min(USERNAME_MAX_WAIT, timedelta(seconds=2 ** min(len(everywhere) - USERNAME_FREE_FAILURES - 1, 16)))
        until = everywhere[0] + wait
        if now < until:
            return Hold("login.slowed", {"seconds": str(max(1, math.ceil((until - now).total_seconds())))})
    return None


def held_usernames(*, session: Session, actor: Actor, now: datetime) -> set[str]:
    """The usernames (lower-cased) some address is locked out of now, for the users page."""
    require(actor, Capability.manage_users)
    rows = session.exec(
        select(LoginAttempt.username).where(
            LoginAttempt.succeeded == False,  # noqa: E712
            col(LoginAttempt.attempted_at) > now - ADDRESS_WINDOW)
        .group_by(col(LoginAttempt.username), col(LoginAttempt.ip))
        .having(func.count() >= ADDRESS_FAILURES)).all()
    return set(rows)


def clear_failures(*, session: Session, username: str) -> int:
    """Forget a username's failed attempts (every address); answers how many there were."""
    result = session.exec(delete(LoginAttempt).where(
        col(LoginAttempt.username) == username.strip().lower(), col(LoginAttempt.succeeded).is_(False)))
    return int(result.rowcount or 0)

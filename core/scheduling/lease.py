"""A lease row in the database: only one sidecar acts at a time. A second one
waits and takes over when the holder stops renewing.

Each takeover raises the lease's generation. A job remembers the generation it
started under (its `Fence`) and checks it inside every transaction that must not
happen after a takeover, so a sidecar that lost the lease mid-job stops writing
and sending instead of acting beside the new holder.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from base.timeutil import utcnow
from db.models import SchedulerLease

LEASE_NAME = "scheduler"
LEASE_TTL = timedelta(seconds=30)


class LeaseLost(RuntimeError):
    """Another sidecar holds the lease now: the job stops where it is."""


@dataclass(frozen=True)
class Fence:
    """The lease a job started under."""

    holder: str
    generation: int

    @property
    def token(self) -> str:
        return f"{self.holder}#{self.generation}"

    def check(self, session: Session, *, lasting: timedelta = timedelta(0), now: datetime | None = None) -> None:
        """Raise LeaseLost unless this lease is still held for at least `lasting`.
        Call it inside the transaction that writes: on SQLite the check takes the
        write lock and on PostgreSQL it locks the lease row until commit, so a
        takeover cannot slip in between the check and the commit."""
        if not confirm(session=session, fence=self, lasting=lasting, now=now):
            raise LeaseLost(f"lease generation {self.generation} of {self.holder} is no longer held")


def try_acquire(*, session: Session, holder: str, now: datetime | None = None,
                ttl: timedelta | None = None) -> Fence | None:
    """Take or renew the lease; the fence when `holder` holds it afterwards,
    else None. The compare-and-set is one UPDATE, so two sidecars cannot both win."""
    now = now or utcnow()
    ttl = ttl or LEASE_TTL
    same_holder = col(SchedulerLease.holder) == holder
    result = session.exec(
        update(SchedulerLease)
        .where(col(SchedulerLease.name) == LEASE_NAME, same_holder | (col(SchedulerLease.expires_at) < now))
        .values(holder=holder, renewed_at=now, expires_at=now + ttl,
                acquired_at=case((same_holder, col(SchedulerLease.acquired_at)), else_=now),
                generation=case((same_holder, col(SchedulerLease.generation)),
                                else_=col(SchedulerLease.generation) + 1))
    )
    if result.rowcount == 1:
        generation = session.exec(select(SchedulerLease.generation).where(
            col(SchedulerLease.name) == LEASE_NAME)).one()
        session.commit()
        return Fence(holder, generation)
    if session.get(SchedulerLease, LEASE_NAME) is None:
        try:
            session.add(SchedulerLease(name=LEASE_NAME, holder=holder, acquired_at=now, renewed_at=now,
                                       expires_at=now + ttl, generation=1))
            session.commit()
            return Fence(holder, 1)
        except IntegrityError:
            session.rollback()
            return None
    session.commit()
    return None


def confirm(*, session: Session, fence: Fence, lasting: timedelta = timedelta(0),
            now: datetime | None = None) -> bool:
    """Whether the fence's lease is held, unexpired for at least `lasting`. A
    no-op UPDATE rather than a SELECT, for the lock (see Fence.check)."""
    now = now or utcnow()
    result = session.exec(
        update(SchedulerLease)
        .where(col(SchedulerLease.name) == LEASE_NAME, col(SchedulerLease.holder) == fence.holder,
               col(SchedulerLease.generation) == fence.generation,
               col(SchedulerLease.expires_at) > now + lasting)
        .values(generation=col(SchedulerLease.generation))
    )
    return result.rowcount == 1


def release(*, session: Session, holder: str) -> None:
    session.exec(
        update(SchedulerLease).where(col(SchedulerLease.name) == LEASE_NAME, col(SchedulerLease.holder) == holder)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()


def heartbeat(*, session: Session) -> SchedulerLease | None:
    """The current lease row (its renewed_at is the sidecar's heartbeat)."""
    return session.get(SchedulerLease, LEASE_NAME)


def heartbeat_age_seconds(*, session: Session, now: datetime | None = None) -> float | None:
    lease = heartbeat(session=session)
    if lease is None:
        return None
    return max(0.0, ((now or utcnow()) - lease.renewed_at).total_seconds())

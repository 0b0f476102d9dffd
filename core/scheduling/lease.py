"""A lease row in the database: only one sidecar acts at a time. A second one
waits and takes over when the holder stops renewing."""

from datetime import datetime, timedelta

from sqlalchemy import case, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from core.timeutil import utcnow
from db.models import SchedulerLease

LEASE_NAME = "scheduler"
LEASE_TTL = timedelta(seconds=30)


def try_acquire(*, session: Session, holder: str, now: datetime | None = None,
                ttl: timedelta = LEASE_TTL) -> bool:
    """Take or renew the lease. True when `holder` holds it afterwards. The
    compare-and-set is one UPDATE, so two sidecars cannot both win."""
    now = now or utcnow()
    result = session.exec(
        update(SchedulerLease)
        .where(col(SchedulerLease.name) == LEASE_NAME,
               (col(SchedulerLease.holder) == holder) | (col(SchedulerLease.expires_at) < now))
        .values(holder=holder, renewed_at=now, expires_at=now + ttl,
                acquired_at=case((col(SchedulerLease.holder) == holder, col(SchedulerLease.acquired_at)),
                                 else_=now))
    )
    if result.rowcount == 1:
        session.commit()
        return True
    if session.get(SchedulerLease, LEASE_NAME) is None:
        try:
            session.add(SchedulerLease(name=LEASE_NAME, holder=holder, acquired_at=now, renewed_at=now,
                                       expires_at=now + ttl))
            session.commit()
            return True
        except IntegrityError:
            session.rollback()
            return False
    session.commit()
    return False


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

"""Each account's growth per day over the last 7 days, kept in `account_growth`.

Read from the snapshots it costs an index seek per account (seconds at 50,000
accounts), yet it moves slowly and is the same for every user: the sidecar works
it out every `REFRESH`, and 容量监控 sorts, filters and pages on the kept figures
in SQL. Without a sidecar (or once it stopped) the page works it out itself when
the kept figures are older than `MAX_AGE`.
"""

from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from base.timeutil import utcnow
from core.capacity.watch import SYNCED_STATUSES
from core.scheduling.jobs import JobContext, register_job
from db.fastsql import dialect_insert
from db.models import Account, AccountGrowth, CountSnapshot
from db.typed import table_of

GROWTH_WINDOW = timedelta(days=7)
# Fewer hours than this between the first and the last point say nothing about a day.
MIN_SPAN = timedelta(hours=1)
REFRESH = timedelta(minutes=5)
MAX_AGE = 2 * REFRESH


def growth_per_day(first: tuple[int, datetime] | None, count: int, at: datetime | None) -> float | None:
    if first is None or at is None or at - first[1] < MIN_SPAN:
        return None
    return (count - first[0]) / ((at - first[1]).total_seconds() / 86400)


def first_points(session: Session, since: datetime,
                 account_ids: list[int] | None = None) -> dict[int, tuple[int, datetime]]:
    """Each account's first snapshot since `since`: one seek per account in the
    (account_id, taken_at) index, not a scan of the whole window's snapshots."""
    first = (select(CountSnapshot.id).where(col(CountSnapshot.account_id) == col(Account.id),
                                            col(CountSnapshot.taken_at) >= since)
             .order_by(col(CountSnapshot.taken_at)).limit(1).correlate(Account).scalar_subquery())
    query = (select(CountSnapshot.account_id, CountSnapshot.customer_count, CountSnapshot.taken_at)
             .select_from(Account).join(CountSnapshot, col(CountSnapshot.id) == first))
    if account_ids is not None:
        query = query.where(col(Account.id).in_(account_ids))
    return {account_id: (count, taken_at) for account_id, count, taken_at in session.exec(query).all()}


def refresh(*, session: Session, now: datetime | None = None) -> int:
    """Work out every synced account's growth again and keep it; the caller commits."""
    now = now or utcnow()
    firsts = first_points(session, now - GROWTH_WINDOW)
    rows = []
    for account_id, count, synced_at in session.exec(select(Account.id, Account.customer_count,
                                                             Account.count_synced_at)
                                                      .where(col(Account.status).in_(SYNCED_STATUSES))).all():
        assert account_id is not None  # a loaded row has its key
        rows.append({"account_id": account_id, "computed_at": now,
                     "growth_per_day": growth_per_day(firsts.get(account_id), count, synced_at)})
    connection = session.connection()
    if rows:
        insert = dialect_insert(connection, table_of(AccountGrowth))
        # An upsert: two consoles refreshing at once both succeed.
        connection.execute(insert.on_conflict_do_update(
            index_elements=["account_id"],
            set_={"growth_per_day": insert.excluded.growth_per_day, "computed_at": insert.excluded.computed_at}),
            rows)
    session.exec(delete(AccountGrowth).where(col(AccountGrowth.computed_at) < now))
    return len(rows)


def keep_fresh(*, session: Session, now: datetime | None = None) -> None:
    """Refresh the kept growth when the sidecar has not lately; the caller commits."""
    now = now or utcnow()
    kept_at = session.exec(select(func.max(AccountGrowth.computed_at))).one()
    if kept_at is None or not now - MAX_AGE <= kept_at <= now:
        refresh(session=session, now=now)


@register_job(id="capacity.growth", interval_seconds=int(REFRESH.total_seconds()), order=15)
def growth_job(ctx: JobContext) -> dict:
    with Session(ctx.engine) as session:
        accounts = refresh(session=session)
        ctx.check_lease(session)
        session.commit()
    return {"accounts": accounts}

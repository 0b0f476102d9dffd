"""Each account's 7-day growth is kept for a few minutes (the sidecar's
capacity.growth job, or the page when the sidecar has not lately), and the
容量监控 listing counts, sorts and pages on it in SQL, on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from base.timeutil import utcnow
from core.auth.permissions import SYSTEM
from core.capacity import growth
from core.capacity.usage import UsageFilter, account_usage, usage_summary
from core.scheduling.jobs import JobContext, load_jobs
from db.models import Account, AccountGrowth, CountSnapshot
from tests.support.capacity import bind_accounts
from tests.support.factories import find_store, make_account, make_binding

# (store, userid, count now, count at the first snapshot of the week) of a 5,000 limit.
FIRST = timedelta(days=7) - timedelta(hours=1)
DAYS = FIRST.total_seconds() / 86400
SPECS = [("000101", "fast", 4000, 2600), ("000102", "slow", 3000, 2930), ("000201", "flat", 1000, 1000)]


def seed(session, now):
    accounts = bind_accounts(session, [(store, userid, count, 5000) for store, userid, count, _then in SPECS])
    for _store, userid, _count, then in SPECS:
        accounts[userid].count_synced_at = now
        session.add(accounts[userid])
        session.add(CountSnapshot(account_id=accounts[userid].id, customer_count=then, taken_at=now - FIRST))
    session.commit()
    return accounts


def kept(session) -> dict[int, float | None]:
    return {row.account_id: row.growth_per_day for row in session.exec(select(AccountGrowth)).all()}


def test_growth_is_kept_for_a_few_minutes_then_worked_out_again(session, org):
    now = utcnow()
    accounts = seed(session, now)
    growth.keep_fresh(session=session, now=now)
    session.commit()
    assert kept(session)[accounts["fast"].id] == pytest.approx(1400 / DAYS)
    session.exec(update(CountSnapshot).where(CountSnapshot.account_id == accounts["fast"].id)
                 .values(customer_count=3300))
    session.commit()
    growth.keep_fresh(session=session, now=now + growth.MAX_AGE - timedelta(seconds=1))
    assert kept(session)[accounts["fast"].id] == pytest.approx(1400 / DAYS)  # kept: not read again
    growth.keep_fresh(session=session, now=now + growth.MAX_AGE + timedelta(seconds=1))
    session.commit()
    assert kept(session)[accounts["fast"].id] == pytest.approx(700 / DAYS)


def test_the_sidecar_job_keeps_the_growth(engine, session, org):
    seed(session, utcnow())
    job = next(spec for spec in load_jobs() if spec.id == "capacity.growth")
    assert job.run(JobContext(engine=engine, holder="test")) == {"accounts": 3}
    assert len(kept(session)) == 3


def check_listing(session: Session, world: dict[str, int]) -> None:
    summary = usage_summary(session=session, actor=SYSTEM, levels=(70, 90, 100))
    # Watched closely: fast (80 %, within 10 points of critical) and slow (60 %, of warn); growing 4 % of
    # the limit a day is not fast. Stale: old, never listed.
    assert (summary.accounts, summary.at_levels, summary.watched, summary.stale) == (4, {70: 1, 90: 0, 100: 0}, 2, 1)
    assert [r.userid for r in account_usage(session=session, actor=SYSTEM)] == ["fast", "slow", "flat", "old"]
    by_growth = account_usage(session=session, actor=SYSTEM, filters=UsageFilter(sort="growth"), offset=1, limit=2)
    assert [r.userid for r in by_growth] == ["slow", "flat"]
    soonest = account_usage(session=session, actor=SYSTEM, filters=UsageFilter(sort="days_to_full"))
    assert [(r.userid, r.days_to_full) for r in soonest][:2] == [("fast", pytest.approx(1000 / (1400 / DAYS))),
                                                                ("slow", pytest.approx(2000 / (70 / DAYS)))]
    over = account_usage(session=session, actor=SYSTEM, filters=UsageFilter(branch_id=world["north"],
                                                                            at_least_pct=70))
    assert [(r.userid, r.serving, r.watched, r.stale) for r in over] == [("fast", True, True, False)]


def listing_world(session, org):
    now = utcnow()
    seed(session, now)
    # Replaced a day ago: listed after every serving account, placed at its old store, never synced.
    old = make_account(session, "old", count=10, limit=5000)
    make_binding(session, find_store(session, "000202"), old, started_at=now - timedelta(days=90),
                 ended_at=now - timedelta(days=1), end_reason="replaced")
    session.exec(update(Account).where(Account.id == old.id).values(count_synced_at=None))
    session.commit()
    return {"north": org["north"].id}


def test_the_listing_counts_sorts_and_pages_in_sql(session, org):
    check_listing(session, listing_world(session, org))


def test_the_listing_on_postgres(pg_org):
    with Session(pg_org.engine, expire_on_commit=False) as session:
        world = listing_world(session, {"north": pg_org.north, "south": pg_org.south})
        growth.refresh(session=session)
        growth.refresh(session=session)  # again: the kept rows are updated in place
        session.commit()
        check_listing(session, world)

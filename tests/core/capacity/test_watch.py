"""Risk-first count sync over real HTTP against the WeCom simulator: accounts near
a level or growing fast are listed every minute, the rest once per interval; a
callback that brings an account into the band makes it watched at the next tick;
a tick's budget goes to the watched accounts first, stalest first."""

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from base.timeutil import utcnow
from core.auth.permissions import SYSTEM
from core.capacity.sync import sync_counts
from core.capacity.usage import fast_growing
from core.capacity.watch import WatchRules, plan_sync, tick_budget, watch_rules
from core.funnel.contacts import ADDED, ContactChange, record_contact_change
from db.models import Account, CountSnapshot
from tests.support.capacity import bind_accounts, client_for, start_simulator

# Usage in % of a 100 limit: warn 70, critical 90, full 100, switch 95; band 10 points below each.
USAGE = {"far": 40, "below_warn": 62, "above_warn": 75, "below_critical": 84, "below_switch": 93, "full": 100}
INTERVAL = 600


@pytest.fixture
def accounts(session, org):
    stores = ["000101", "000102", "101", "000103", "000201", "000202"]
    return bind_accounts(session, [(store, userid, 0, 100) for store, userid in zip(stores, USAGE, strict=False)])


@pytest.fixture
def sim():
    simulator = start_simulator()
    simulator.set_customers(USAGE)
    yield simulator
    simulator.stop()


@pytest.fixture
def rules(session):
    found = watch_rules(session=session)
    assert found.levels == (70, 90, 95, 100) and found.band == 10  # the defaults, switch level included
    return WatchRules(levels=found.levels, band=found.band, fast_growth=found.fast_growth, cold_interval=INTERVAL)


def tick(engine, sim, rules, now, *, budget=1000, growing=()):
    """One sync tick at `now`: plan, then list the planned accounts in the simulator."""
    with Session(engine) as session:
        plan = plan_sync(session=session, rules=rules, budget=budget, growing=growing, now=now)
    if plan.account_ids:
        with client_for(sim) as client:
            sync_counts(engine=engine, client=client, only=plan.account_ids, now=now)
    return plan


def names(session, ids):
    by_id = {a.id: a.userid for a in session.exec(select(Account)).all()}
    return [by_id[i] for i in ids]


def counts(session) -> dict[str, int]:
    session.expire_all()
    return {a.userid: a.customer_count for a in session.exec(select(Account)).all()}


def test_accounts_near_a_level_are_listed_every_minute_the_rest_once_per_interval(
        engine, session, accounts, sim, rules):
    start = utcnow()
    first = tick(engine, sim, rules, start)
    assert sorted(names(session, first.account_ids)) == sorted(USAGE)  # never listed: all due
    assert counts(session) == USAGE
    # Every account gains one customer in WeCom; each tick shows who was listed.
    sim.set_customers({userid: pct + 1 for userid, pct in USAGE.items()})
    listed: dict[str, list[int]] = {userid: [] for userid in USAGE}
    for second in range(15, INTERVAL + 1, 15):
        plan = tick(engine, sim, rules, start + timedelta(seconds=second))
        for userid in names(session, plan.account_ids):
            listed[userid].append(second)
    watched = ["below_warn", "below_critical", "below_switch"]
    for userid in watched:
        assert listed[userid] == list(range(60, INTERVAL + 1, 60)), userid
    for userid in set(USAGE) - set(watched):
        assert listed[userid] == [INTERVAL], userid
    assert counts(session) == {userid: pct + 1 for userid, pct in USAGE.items()}


def test_a_callback_that_brings_an_account_into_the_band_makes_it_watched_at_once(
        engine, session, org, accounts, sim, rules):
    start = utcnow()
    tick(engine, sim, rules, start)
    later = start + timedelta(seconds=60)
    assert names(session, tick(engine, sim, rules, later).account_ids) == ["below_warn", "below_critical",
                                                                          "below_switch"]
    # 59 → 60 customers of 100 through the add-customer callback: 10 points below warn.
    account = session.exec(select(Account).where(Account.userid == "far")).one()
    account.customer_count = 59
    session.add(account)
    session.commit()
    sim.set_customers({"far": 61})
    assert tick(engine, sim, rules, later + timedelta(seconds=15)).account_ids == []
    record_contact_change(session=session, actor=SYSTEM, change=ContactChange(
        corp_id=sim.corp_id, change_type=ADDED, userid="far", external_userid="wm-new",
        create_time=int(later.timestamp())))
    session.commit()
    plan = tick(engine, sim, rules, later + timedelta(seconds=30))
    assert names(session, plan.hot) == ["far"] and plan.cold == []
    assert counts(session)["far"] == 61  # listed in WeCom, not only moved by the callback


def test_a_fast_growing_account_is_watched_whatever_its_usage(engine, session, accounts, sim, rules):
    start = utcnow()
    tick(engine, sim, rules, start)
    # "far" gained 30 of its 100 in three days: 10 points a day, the default for growing fast.
    far = session.exec(select(Account).where(Account.userid == "far")).one()
    session.add(CountSnapshot(account_id=far.id, customer_count=10, taken_at=start - timedelta(days=3)))
    session.commit()
    growing = fast_growing(session=session, rules=rules, now=start)
    assert names(session, growing) == ["far"]
    plan = tick(engine, sim, rules, start + timedelta(seconds=60), growing=growing)
    assert names(session, plan.hot) == ["far", "below_warn", "below_critical", "below_switch"]


def test_the_budget_goes_to_watched_accounts_first_stalest_first(engine, session, accounts, sim, rules):
    start = utcnow()
    tick(engine, sim, rules, start)
    ids = {a.userid: a.id for a in accounts.values()}
    # The watched accounts were listed at different times; two cold ones are due too.
    stamps = {"below_switch": 300, "below_warn": 200, "below_critical": 100, "far": 900, "full": 800}
    for userid, seconds_ago in stamps.items():
        account = session.get(Account, ids[userid])
        account.count_synced_at = start - timedelta(seconds=seconds_ago)
        session.add(account)
    session.commit()
    plan = tick(engine, sim, rules, start, budget=4)
    assert names(session, plan.hot) == ["below_switch", "below_warn", "below_critical"]
    assert names(session, plan.cold) == ["far"]
    assert (plan.watched, plan.waiting) == (3, 1)
    nxt = tick(engine, sim, rules, start + timedelta(seconds=15), budget=4)
    assert names(session, nxt.account_ids) == ["full"]


def test_a_tick_lists_at_most_its_share_of_the_pace():
    # Ticks every 15 s never overlap and each lists at most a quarter of a minute's calls.
    assert tick_budget(10_000) == 2_500 and tick_budget(9_000) == 2_250 and tick_budget(1) == 1

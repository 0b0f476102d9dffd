"""立即同步客户数 over real HTTP against the WeCom simulator: every account in the
operator's scope is listed within the pace (the accounts watched closely still
first), other branches' accounts are not forced, a failed account does not hold
the sweep up, and the sidecar's tick lists them paced at `wecom.calls_per_minute`."""

import time
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from base.errors import PermissionDenied
from base.timeutil import utcnow
from core.capacity import jobs as capacity_jobs
from core.capacity import sweep
from core.capacity.jobs import sync_job
from core.capacity.sync import sync_counts
from core.capacity.watch import WatchRules, plan_sync, watch_rules
from core.scheduling.jobs import JobContext
from db.models import Account, AuditEntry, JobRequest, Role, SettingOverride, StandbyAccount
from tests.support.capacity import bind_accounts, client_for, start_simulator
from tests.support.factories import find_store, make_account

INTERVAL = 600
# (store, userid, customers of 100): warn 70 with a 10-point band, so "north_hot" is watched closely.
SPECS = [("000101", "north_a", 20), ("000102", "north_b", 30), ("101", "north_hot", 65),
         ("000201", "south_a", 20), ("000202", "south_b", 40)]
NORTH = {"north_a", "north_b", "north_hot"}
SOUTH = {"south_a", "south_b", "south_spare"}


@pytest.fixture
def sim():
    simulator = start_simulator()
    yield simulator
    simulator.stop()


@pytest.fixture
def listed_before(session, org, sim):
    """Every account listed two minutes ago: none is due by its interval, the one near warn is.
    WeCom has five more customers for each since."""
    accounts = bind_accounts(session, [(store, userid, count, 100) for store, userid, count in SPECS])
    spare = make_account(session, "south_spare", status="standby", count=10, limit=100)
    session.add(StandbyAccount(store_id=find_store(session, "000201").id, account_id=spare.id))
    before = utcnow() - timedelta(minutes=2)
    for account in [*accounts.values(), spare]:
        account.count_synced_at = before
        session.add(account)
    session.commit()
    sim.set_customers({userid: count + 5 for _store, userid, count in SPECS} | {"south_spare": 15})
    return before


@pytest.fixture
def rules(session):
    found = watch_rules(session=session)
    return WatchRules(levels=found.levels, band=found.band, fast_growth=found.fast_growth, cold_interval=INTERVAL)


def counts(session) -> dict[str, int]:
    session.expire_all()
    return {a.userid: a.customer_count for a in session.exec(select(Account)).all()}


def tick(engine, sim, rules, now, budget):
    with Session(engine) as session:
        plan = plan_sync(session=session, rules=rules, budget=budget, now=now,
                         requested=sweep.running_sweeps(session=session, now=now))
        names = {a.id: a.userid for a in session.exec(select(Account)).all()}
    if plan.account_ids:
        with client_for(sim) as client:
            sync_counts(engine=engine, client=client, only=plan.account_ids, now=now)
    return [names[i] for i in plan.hot], [names[i] for i in plan.requested], [names[i] for i in plan.cold]


def test_a_branch_operator_s_sweep_lists_the_branch_s_accounts_and_no_other(
        engine, session, org, listed_before, sim, rules, make_user):
    agency = make_user(Role.hq_operator, org["south"])
    requested = sweep.request_sweep(session=session, actor=agency.actor)
    session.commit()
    assert requested.branch_id == org["south"].id
    now = utcnow()
    # Two calls a tick: the account near warn first, then the sweep's, stalest first.
    assert tick(engine, sim, rules, now, budget=2) == (["north_hot"], ["south_a"], [])
    assert tick(engine, sim, rules, now + timedelta(seconds=15), budget=2) == ([], ["south_b", "south_spare"], [])
    assert tick(engine, sim, rules, now + timedelta(seconds=30), budget=2) == ([], [], [])
    found = counts(session)
    assert {userid: found[userid] for userid in SOUTH} == {"south_a": 25, "south_b": 45, "south_spare": 15}
    # The other branch keeps its interval: listed only because it is near warn.
    assert {userid: found[userid] for userid in NORTH} == {"north_a": 20, "north_b": 30, "north_hot": 70}

    progress = sweep.sweep_progress(session=session, actor=agency.actor)
    assert (progress.total, progress.listed, progress.failed, progress.done) == (3, 3, 0, True)
    # HQ sees no chain-wide sweep: the agency's covered one branch only.
    assert sweep.sweep_progress(session=session, actor=make_user(Role.hq_operator).actor) is None


def test_a_member_wecom_does_not_know_is_counted_failed_not_retried_every_tick(
        engine, session, org, listed_before, sim, rules, make_user):
    # Listed before, and no longer in WeCom's follow list.
    ghost = make_account(session, "ghost", count=1, limit=100)
    ghost.count_synced_at = listed_before
    session.add(ghost)
    operator = make_user(Role.hq_operator)
    sweep.request_sweep(session=session, actor=operator.actor)
    session.commit()
    now = utcnow()
    hot, requested, _cold = tick(engine, sim, rules, now, budget=100)
    assert hot == ["north_hot"] and sorted(requested) == sorted(NORTH - {"north_hot"} | SOUTH | {"ghost"})
    assert tick(engine, sim, rules, now + timedelta(seconds=15), budget=100) == ([], [], [])
    progress = sweep.sweep_progress(session=session, actor=operator.actor)
    assert (progress.total, progress.listed, progress.failed, progress.done) == (7, 6, 1, True)


def test_asking_again_while_a_sweep_runs_keeps_the_one_and_is_audited_once(session, org, listed_before, make_user):
    operator = make_user(Role.hq_operator)
    first = sweep.request_sweep(session=session, actor=operator.actor)
    again = sweep.request_sweep(session=session, actor=make_user(Role.hq_admin).actor)
    session.commit()
    assert again.request_id == first.request_id
    assert len(session.exec(select(JobRequest)).all()) == 1
    assert [e.action for e in session.exec(select(AuditEntry)).all()] == ["job.request"]
    progress = sweep.sweep_progress(session=session, actor=operator.actor)
    assert (progress.total, progress.waiting, progress.sweep.picked) == (6, 6, False)


@pytest.mark.parametrize("role", [Role.branch_manager, Role.viewer])
def test_only_those_who_run_the_sync_may_ask_for_a_sweep(session, org, role, make_user):
    user = make_user(role, org["north"] if role == Role.branch_manager else None)
    with pytest.raises(PermissionDenied):
        sweep.request_sweep(session=session, actor=user.actor)


def test_the_sidecar_lists_the_sweep_paced_at_the_configured_calls_per_minute(
        engine, session, org, listed_before, sim, make_user, monkeypatch):
    pace = 240  # a call every quarter second; the simulator refuses a 241st in a minute
    sim.per_minute = pace
    for key, value in {"WECOM_API_BASE": sim.base_url, "WECOM_CORP_ID": sim.corp_id,
                       "WECOM_SECRET": sim.secret}.items():
        monkeypatch.setenv(key, value)
    from base.config import get_settings

    get_settings.cache_clear()
    # The growth the sidecar keeps between ticks, from a clean start.
    monkeypatch.setattr(capacity_jobs, "growing_fast", capacity_jobs._Growing())
    session.add(SettingOverride(key="wecom.calls_per_minute", value_json=str(pace)))
    sweep.request_sweep(session=session, actor=make_user(Role.hq_operator).actor)
    session.commit()
    lists_before = sim.calls["externalcontact/list"]
    started = time.monotonic()
    figures = sync_job(JobContext(engine=engine, holder="test"))
    elapsed = time.monotonic() - started
    assert (figures["listed_watched"], figures["listed_requested"], figures["listed_other"]) == (1, 5, 0)
    assert sim.calls["externalcontact/list"] - lists_before == 6  # one call per account, no retry
    assert elapsed >= 5 * 60 / pace  # six calls, evenly paced
    assert counts(session) == {userid: count + 5 for _store, userid, count in SPECS} | {"south_spare": 15}
    assert not any(a.sync_error for a in session.exec(select(Account)).all())

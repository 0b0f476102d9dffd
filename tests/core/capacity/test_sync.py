"""Customer-count sync over real HTTP against the WeCom simulator: token expiry
mid-sync, bursts of 45009, flaky -1, errcodes turned into operator reasons,
snapshots and the pacing limiter."""

import pytest
from sqlmodel import Session, func, select

from core.capacity.sync import SyncAborted, sync_counts
from core.wecom.client import RateLimiter
from db.models import Account, CountSnapshot
from demo.simulator import Fault, WeComSimulator
from i18n import t
from tests.support.capacity import bind_accounts, client_for, start_simulator
from tests.support.factories import make_account
from tests.support.problems import shown

USERS = [("000101", "store000101", 10, 5000), ("000102", "store000102", 20, 5000), ("101", "store101", 30, 5000),
         ("000201", "store000201", 40, 5000), ("000202", "store000202", 50, 5000)]


@pytest.fixture
def accounts(session, org):
    return bind_accounts(session, USERS)


@pytest.fixture
def sim():
    simulator = start_simulator()
    simulator.set_customers({"store000101": 3600, "store000102": 1200, "store101": 0, "store000201": 4999,
                             "STORE000202": 77})
    yield simulator
    simulator.stop()


def counts(session: Session) -> dict[str, tuple[int, str | None]]:
    session.expire_all()
    return {a.userid: (a.customer_count, shown(a.sync_error)) for a in session.exec(select(Account)).all()}


def test_sync_stores_counts_and_snapshots(engine, session, accounts, sim):
    with client_for(sim) as client:
        result = sync_counts(engine=engine, client=client)
    assert (result.accounts, result.synced, result.failed) == (5, 5, 0)
    assert counts(session) == {"store000101": (3600, None), "store000102": (1200, None), "store101": (0, None),
                               "store000201": (4999, None), "store000202": (77, None)}  # userid is case-insensitive
    assert session.exec(select(func.count()).select_from(CountSnapshot)).one() == 5
    # An unchanged count within the hour adds no point; a changed one does.
    sim.set_customers({"store000101": 3650})
    with client_for(sim) as client:
        again = sync_counts(engine=engine, client=client)
    assert again.snapshots == 1
    assert counts(session)["store000101"] == (3650, None)


class ExpiringSimulator(WeComSimulator):
    """Invalidates every token once, in the middle of the sync."""

    expire_at_call = 3

    def api(self, api, query):
        if api == "externalcontact/list" and self.calls[api] == self.expire_at_call:
            self.expire_tokens()
        return super().api(api, query)


def test_token_expiring_mid_sync_is_refetched_once(engine, session, accounts):
    sim = ExpiringSimulator().start()
    sim.set_customers({u: 100 + n for n, (_s, u, _c, _l) in enumerate(USERS)})
    try:
        with client_for(sim) as client:
            result = sync_counts(engine=engine, client=client, concurrency=4)
        assert result.failed == 0
        assert all(error is None for _count, error in counts(session).values())
        # One token at the start, one after the expiry — not one per waiting thread.
        assert sim.calls["gettoken"] == 2
        assert sim.answers[40014] >= 1
    finally:
        sim.stop()


def test_bursts_of_45009_back_off_and_finish(engine, session, accounts, sim):
    sim.inject("externalcontact/list", *[Fault(errcode=45009)] * 5, Fault(errcode=45033))
    with client_for(sim) as client:
        result = sync_counts(engine=engine, client=client)
        assert client.stats["throttled"] == 6
    assert result.failed == 0
    assert counts(session)["store000201"] == (4999, None)


def test_flaky_busy_is_retried_at_most_three_times(engine, session, accounts, sim):
    # Two busy answers then fine: synced. Four in a row for one account: that account shows the reason.
    sim.inject("externalcontact/list", Fault(errcode=-1), Fault(errcode=-1))
    with client_for(sim) as client:
        assert sync_counts(engine=engine, client=client, concurrency=1).failed == 0
    sim.inject("externalcontact/list", *[Fault(errcode=-1)] * 4)
    with client_for(sim) as client:
        result = sync_counts(engine=engine, client=client, concurrency=1)
    assert result.failed == 1 and result.reasons == {"wecom.reason.busy": 1}
    errors = [error for _count, error in counts(session).values() if error]
    assert errors == [t("wecom.reason.busy")]


def test_errcodes_become_operator_reasons(engine, session, accounts, sim):
    sim.inject("externalcontact/list", Fault(errcode=84061))
    sim.set_customers({})
    del sim.customers["store000202"]  # no longer in the follow-user list
    with client_for(sim) as client:
        result = sync_counts(engine=engine, client=client, concurrency=1)
    assert result.reasons == {"wecom.reason.not_customer_contact": 1, "wecom.reason.not_in_follow_list": 1}
    reasons = {u: e for u, (_c, e) in counts(session).items() if e}
    assert reasons["store000202"] == t("wecom.reason.not_in_follow_list")
    assert t("wecom.reason.not_customer_contact") in reasons.values()
    assert "84061" in t("wecom.reason.not_customer_contact")


def test_whole_sync_errors_are_stored_on_every_account(engine, session, accounts, sim):
    sim.inject("externalcontact/get_follow_user_list", Fault(errcode=60020))
    with client_for(sim) as client, pytest.raises(SyncAborted):
        sync_counts(engine=engine, client=client)
    assert {e for _c, e in counts(session).values()} == {t("wecom.reason.ip_not_trusted")}


def test_bad_secret_is_a_reason_not_a_retry(engine, session, accounts, sim):
    with client_for(sim) as client, pytest.raises(SyncAborted):
        sim.secret = "rotated"  # the console still has the old one
        sync_counts(engine=engine, client=client)
    assert sim.calls["gettoken"] == 1
    assert {e for _c, e in counts(session).values()} == {t("wecom.reason.bad_secret")}


def test_rate_limiter_spaces_calls_evenly():
    clock = {"now": 100.0}
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["now"] += seconds

    limiter = RateLimiter(120, clock=lambda: clock["now"], sleep=sleep)
    for _ in range(5):
        limiter.acquire()
    # 120/min is one call every 0.5 s: the first goes at once, each next waits its slot.
    assert slept == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert clock["now"] == pytest.approx(102.0)


def test_simulator_enforces_its_per_minute_limit():
    import httpx

    sim = start_simulator(per_minute=3)
    try:
        answers = [httpx.get(f"{sim.base_url}/cgi-bin/gettoken",
                             params={"corpid": sim.corp_id, "corpsecret": sim.secret}).json()["errcode"]
                   for _ in range(4)]
        assert answers == [0, 0, 0, 45009]
    finally:
        sim.stop()


def test_wecom_unreachable_is_a_network_reason(engine, session, accounts):
    from core.wecom.client import RetryPolicy, WeComClient

    # Port 9 (discard) has no listener on loopback here: connection refused.
    with WeComClient("http://127.0.0.1:9", "ww", "s", retry=RetryPolicy(0.01, 0.02, 3)) as client, \
            pytest.raises(SyncAborted):
        sync_counts(engine=engine, client=client)
    errors = {e for _c, e in counts(session).values()}
    assert len(errors) == 1 and errors.pop().startswith("无法连接企业微信接口")


class OutageSimulator(WeComSimulator):
    """Answers the first list calls, then says "system busy" to every call."""

    healthy_calls = 5

    def api(self, api, query):
        if api == "externalcontact/list" and self.calls[api] >= self.healthy_calls:
            self.calls[api] += 1
            return {"errcode": -1, "errmsg": "system busy"}
        return super().api(api, query)


def test_a_wecom_outage_mid_sync_stops_the_sync_instead_of_retrying_every_account(engine, session):
    from core.capacity.sync import MAX_CONSECUTIVE_FAILURES

    accounts = 3 * MAX_CONSECUTIVE_FAILURES
    for n in range(accounts):
        make_account(session, f"user{n:03d}", name="")
    sim = OutageSimulator().start()
    sim.set_customers({f"user{n:03d}": n for n in range(accounts)})
    try:
        with client_for(sim) as client, pytest.raises(SyncAborted):
            sync_counts(engine=engine, client=client, concurrency=1)
        # It stopped after the streak of failures instead of trying every account 4 times.
        assert sim.calls["externalcontact/list"] < OutageSimulator.healthy_calls + 4 * (MAX_CONSECUTIVE_FAILURES + 1)
        synced = [a for a in session.exec(select(Account)).all() if a.count_synced_at is not None]
        assert len(synced) == OutageSimulator.healthy_calls
    finally:
        sim.stop()


def test_demo_growth_picks_the_accounts_just_under_the_warning_line():
    from console.cli.capacity import growth_plan

    plan = growth_plan([("a", 3400, 5000), ("b", 3600, 5000), ("c", 3100, 5000), ("d", 1000, 5000)], 70, 2)
    # Closest under 70 % first; each crosses a little after the previous one.
    assert list(plan) == ["a", "c"]
    assert plan["a"] == pytest.approx(100 / 1) and plan["c"] == pytest.approx(400 / 2.5)

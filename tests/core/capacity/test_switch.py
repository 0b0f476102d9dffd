"""The automatic switch (自动换号): which stores move, to which standby, what the
groups are told, and that two sidecars on PostgreSQL move a store once."""

import threading

import pytest
from sqlmodel import Session, col, select

from core.capacity.switch import switch_accounts
from core.scheduling.lease import LeaseLost
from db.models import (
    Account,
    AccountStatus,
    AccountSwitch,
    AlertChannel,
    AlertDelivery,
    Binding,
    CapacityAlert,
    StandbyAccount,
)
from tests.support.factories import bind, find_store, make_account


def reserve(session: Session, crm_store_id: str, *accounts: Account) -> None:
    store = find_store(session, crm_store_id)
    for position, account in enumerate(accounts):
        session.add(StandbyAccount(store_id=store.id, account_id=account.id, position=position))
    session.commit()


def hq_channel(session: Session) -> None:
    session.add(AlertChannel(name="总部群", kind="wecom", url="http://127.0.0.1:9/cgi-bin/webhook/send?key=hq"))
    session.commit()


def current(session: Session, crm_store_id: str) -> tuple[Binding, Account]:
    store = find_store(session, crm_store_id)
    binding = session.exec(select(Binding).where(Binding.store_id == store.id,
                                                 col(Binding.ended_at).is_(None))).one()
    return binding, session.get_one(Account, binding.account_id)


def texts(session: Session) -> list[str]:
    return [d.text for d in session.exec(select(AlertDelivery).order_by(col(AlertDelivery.id))).all()]


@pytest.fixture
def full_store(session, org):
    """Store 000101 shown and reviewed on an account at 95 % (4,750 of 5,000), a channel for every alert."""
    hq_channel(session)
    old = bind(session, "000101", "old101", shown=True, reviewed=True, count=4750, name="朝阳老号")
    return session.get_one(Account, old.account_id)


def test_at_the_switch_level_the_store_moves_to_its_first_usable_standby(engine, session, full_store):
    busy = make_account(session, "busy", status="standby", count=3600)   # 72 %: over its own warn level
    fresh = make_account(session, "fresh", name="朝阳新号", status="standby", count=10)
    later = make_account(session, "later", status="standby")
    reserve(session, "000101", busy, fresh, later)

    figures = switch_accounts(engine=engine)

    assert figures["switched"] == 1
    session.expire_all()
    binding, account = current(session, "000101")
    assert account.userid == "fresh" and account.status == AccountStatus.active
    # The entry stays up: the old flag is kept and the binding counts as reviewed.
    assert binding.shown is True and binding.reviewed_at is not None
    old_binding = session.exec(select(Binding).where(Binding.account_id == full_store.id)).one()
    assert old_binding.end_reason == "replaced"
    # The old account stays listed, active and unbound; the standby left the list, the others stay in order.
    assert session.get_one(Account, full_store.id).status == AccountStatus.active
    assert [r.account_id for r in session.exec(select(StandbyAccount).order_by(col(StandbyAccount.position)))] == [
        busy.id, later.id]
    switch = session.exec(select(AccountSwitch)).one()
    assert (switch.reason, switch.usage_pct, switch.from_account_id, switch.to_account_id) == (
        "capacity", 95.0, full_store.id, fresh.id)
    assert texts(session) == [
        "北京朝阳大悦城店已自动换号：朝阳老号(账号:old101) → 朝阳新号(账号:fresh)，原账号客户容量已达95%，二维码不变。"]
    alert = session.get_one(CapacityAlert, switch.alert_id)
    assert alert.level == "switched" and alert.closed_at is not None and alert.notify_count == 1


def test_a_second_pass_moves_nothing_and_says_nothing_more(engine, session, full_store):
    reserve(session, "000101", make_account(session, "fresh", status="standby"))
    assert switch_accounts(engine=engine)["switched"] == 1
    assert switch_accounts(engine=engine)["switched"] == 0
    assert len(texts(session)) == 1


def test_below_the_level_nothing_moves(engine, session, org):
    hq_channel(session)
    bind(session, "000101", "old101", shown=True, count=4749)   # 94.98 %
    reserve(session, "000101", make_account(session, "fresh", status="standby"))
    assert switch_accounts(engine=engine)["switched"] == 0
    assert current(session, "000101")[1].userid == "old101"
    assert texts(session) == []


def test_level_zero_turns_switching_off(engine, session, full_store):
    from core import settings_store
    from core.auth.permissions import SYSTEM

    reserve(session, "000101", make_account(session, "fresh", status="standby"))
    settings_store.save(session=session, actor=SYSTEM, key="capacity.switch_pct", value=0)
    session.commit()
    assert switch_accounts(engine=engine)["switched"] == 0
    assert current(session, "000101")[1].userid == "old101"


def test_a_hidden_entry_stays_hidden_after_the_switch(engine, session, org):
    bind(session, "000102", "old102", shown=False, count=5000)
    reserve(session, "000102", make_account(session, "fresh", status="standby"))
    assert switch_accounts(engine=engine)["switched"] == 1
    session.expire_all()
    binding, account = current(session, "000102")
    assert account.userid == "fresh" and binding.shown is False


def test_no_usable_standby_raises_one_critical_alert_not_one_a_minute(engine, session, full_store):
    reserve(session, "000101", make_account(session, "busy", status="standby", count=3500))  # at its warn level
    for _ in range(3):
        figures = switch_accounts(engine=engine)
    assert figures["switched"] == 0
    assert current(session, "000101")[1].userid == "old101"
    [text] = texts(session)
    assert text.startswith("【严重】北京朝阳大悦城店（000101）") and "没有可用的备用号" in text
    alert = session.exec(select(CapacityAlert).where(CapacityAlert.level == "no_standby")).one()
    assert alert.closed_at is None

    # A usable standby added later takes over and the episode ends.
    reserve(session, "000101", make_account(session, "fresh", status="standby"))
    assert switch_accounts(engine=engine)["switched"] == 1
    session.expire_all()
    assert session.get_one(CapacityAlert, alert.id).closed_at is not None


def test_the_evaluation_leaves_switch_alerts_alone(engine, session, full_store):
    from core.capacity.evaluate import evaluate

    switch_accounts(engine=engine)   # no standby: an open no_standby episode
    figures = evaluate(session=session)
    session.commit()
    assert figures["opened"] == 2   # warn and critical, beside the open no_standby episode


def test_a_sidecar_that_lost_its_lease_switches_nothing(engine, session, full_store):
    reserve(session, "000101", make_account(session, "fresh", status="standby"))

    class Lost:
        def check(self, session):
            raise LeaseLost("taken over")

    with pytest.raises(LeaseLost):
        switch_accounts(engine=engine, fence=Lost())
    session.expire_all()
    assert current(session, "000101")[1].userid == "old101"
    assert texts(session) == []


def test_two_sidecars_on_postgres_switch_a_store_once_and_say_it_once(pg_org):
    engine = pg_org.engine
    with Session(engine, expire_on_commit=False) as session:
        hq_channel(session)
        for crm_store_id in ("000101", "000102", "000201"):
            bind(session, crm_store_id, f"old{crm_store_id}", shown=True, reviewed=True, count=4900)
            reserve(session, crm_store_id, make_account(session, f"new{crm_store_id}", status="standby"))
    start = threading.Barrier(2)
    results: list[dict] = []
    errors: list[BaseException] = []

    def sidecar() -> None:
        try:
            start.wait()
            results.append(switch_accounts(engine=engine))
        except BaseException as exc:  # the test reports it below
            errors.append(exc)

    threads = [threading.Thread(target=sidecar) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sum(r["switched"] for r in results) == 3
    with Session(engine) as session:
        assert len(session.exec(select(AccountSwitch)).all()) == 3
        assert len(texts(session)) == 3
        for crm_store_id in ("000101", "000102", "000201"):
            binding, account = current(session, crm_store_id)
            assert account.userid == f"new{crm_store_id}" and binding.shown is True


def test_a_no_standby_alert_no_channel_took_goes_out_once_a_channel_does(engine, session, org):
    bind(session, "000101", "old101", shown=True, count=4800)
    switch_accounts(engine=engine)
    assert texts(session) == []
    hq_channel(session)
    switch_accounts(engine=engine)
    switch_accounts(engine=engine)
    assert len(texts(session)) == 1


def test_the_switch_runs_after_the_count_sync_and_before_the_codes_follow():
    from core.scheduling.jobs import load_jobs

    order = [spec.id for spec in load_jobs()]
    assert order.index("capacity.sync_counts") < order.index("capacity.switch") < order.index("codes.sync") \
        < order.index("capacity.evaluate")


def test_a_standby_accounts_count_is_synced_and_decides_whether_it_can_take_over(engine, session, full_store):
    from core.capacity.sync import sync_counts
    from tests.support.capacity import client_for, start_simulator

    spare = make_account(session, "spare", status="standby")
    reserve(session, "000101", spare)
    sim = start_simulator()
    sim.set_customers({"old101": 4750, "spare": 3600})   # the spare already holds 72 %
    try:
        with client_for(sim) as client:
            sync_counts(engine=engine, client=client)
    finally:
        sim.stop()
    session.expire_all()
    assert session.get_one(Account, spare.id).customer_count == 3600
    assert switch_accounts(engine=engine)["switched"] == 0

"""On PostgreSQL: the migration, sync writes, the one-open-episode index and
evaluation → outbox, as in a multi-instance deployment."""

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.capacity.evaluate import evaluate
from core.capacity.sync import sync_counts
from db.engine import get_engine
from db.models import AlertChannel, AlertDelivery, CapacityAlert, CountSnapshot, SchedulerLease
from tests.support.capacity import bind_accounts, client_for, start_simulator


def test_sync_and_evaluate_on_postgres(pg_org):
    engine = pg_org.engine
    with Session(engine, expire_on_commit=False) as session:
        session.add(AlertChannel(name="总部群", kind="wecom", url="http://127.0.0.1:9/cgi-bin/webhook/send?key=hq"))
        session.commit()
        accounts = bind_accounts(session, [("000101", "store000101", 100, 5000)])
    sim = start_simulator()
    sim.set_customers({"store000101": 4700})
    try:
        with client_for(sim) as client:
            assert sync_counts(engine=engine, client=client).synced == 1
    finally:
        sim.stop()
    with Session(engine) as session:
        figures = evaluate(session=session)
        session.commit()
        assert figures["opened"] == 2 and figures["notified"] == 1
        assert session.exec(select(CountSnapshot)).one().customer_count == 4700
        delivery = session.exec(select(AlertDelivery)).one()
        assert "已达到90%" in delivery.text
        # A second open episode for the same account and level is refused by the database.
        session.add(CapacityAlert(account_id=accounts["store000101"].id, level="critical", level_pct=90,
                                  customer_count=4700, capacity_limit=5000))
        with pytest.raises(IntegrityError):
            session.commit()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_capacity_migration_downgrades_and_upgrades_again(backend, tmp_path, request):
    from alembic import command
    from sqlalchemy import inspect

    from db.migrate import alembic_config, upgrade_to_head

    url = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    upgrade_to_head(url)
    tables = {"count_snapshot", "capacity_alert", "alert_channel", "alert_delivery"}
    assert tables <= set(inspect(get_engine(url)).get_table_names())
    command.downgrade(alembic_config(url), "0004_capacity-1")
    assert not tables & set(inspect(get_engine(url)).get_table_names())
    upgrade_to_head(url)
    assert tables <= set(inspect(get_engine(url)).get_table_names())


def test_lease_fencing_and_outbox_claims_on_postgres(pg_url):
    from datetime import timedelta

    from base.timeutil import utcnow
    from core.alerts.outbox import deliver_due, enqueue
    from core.scheduling import lease

    engine = get_engine(pg_url)
    sim = start_simulator()
    try:
        with Session(engine, expire_on_commit=False) as session:
            session.add(AlertChannel(name="总部群", kind="wecom", url=f"{sim.base_url}/cgi-bin/webhook/send?key=hq"))
            session.commit()
            enqueue(session=session, alert_id=None, branch_id=None, text="store1 客户容量已达到70%")
            session.commit()
            now = utcnow()
            old = lease.try_acquire(session=session, holder="a", now=now)
            new = lease.try_acquire(session=session, holder="b", now=now + lease.LEASE_TTL + timedelta(seconds=1))
            assert (old.generation, new.generation) == (1, 2)
            # The old holder is fenced off: nothing claimed, nothing sent.
            with pytest.raises(lease.LeaseLost):
                deliver_due(engine=engine, fence=old)
            assert sim.messages() == []
            session.exec(update(SchedulerLease).values(expires_at=utcnow() + timedelta(seconds=30)))
            session.commit()
            assert deliver_due(engine=engine, fence=new).sent == 1
            delivery = session.exec(select(AlertDelivery)).one()
            session.refresh(delivery)
            assert (delivery.status, delivery.claim_token) == ("sent", "b#2")
        assert len(sim.messages()) == 1
    finally:
        sim.stop()

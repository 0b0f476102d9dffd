"""On PostgreSQL: a sweep's SQL (scope, waiting, progress, the stale count) and
the settings' compare-and-set, as in a multi-instance deployment."""

from datetime import timedelta

import pytest
from sqlmodel import Session

from base.timeutil import utcnow
from core.capacity import alert_settings, sweep
from core.capacity.freshness import chain_freshness
from core.capacity.watch import plan_sync, watch_rules
from db.models import Role
from tests.support.capacity import bind_accounts
from tests.support.factories import make_user


def test_a_branch_sweep_and_the_stale_count_on_postgres(pg_org):
    with Session(pg_org.engine, expire_on_commit=False) as session:
        accounts = bind_accounts(session, [("000101", "north1", 10, 100), ("000201", "south1", 10, 100),
                                           ("000202", "south2", 65, 100)])
        before = utcnow() - timedelta(minutes=2)
        for account in accounts.values():
            account.count_synced_at = before
            session.add(account)
        agency = make_user(session, Role.hq_operator, pg_org.south, username="agency")
        sweep.request_sweep(session=session, actor=agency.actor)
        session.commit()
        plan = plan_sync(session=session, rules=watch_rules(session=session), budget=10,
                         requested=sweep.running_sweeps(session=session))
        ids = {a.id: a.userid for a in accounts.values()}
        assert [ids[i] for i in plan.hot] == ["south2"] and [ids[i] for i in plan.requested] == ["south1"]
        progress = sweep.sweep_progress(session=session, actor=agency.actor)
        assert (progress.total, progress.waiting) == (2, 2)
        # south2 is watched closely: two minutes is stale for it, not for the others.
        assert chain_freshness(session=session, actor=make_user(session, Role.hq_admin).actor).stale == 1


def test_settings_saved_meanwhile_are_not_overwritten_on_postgres(pg_org):
    with Session(pg_org.engine, expire_on_commit=False) as session:
        first, second = (make_user(session, Role.hq_operator, username=name).actor for name in ("ops1", "ops2"))
        session.commit()
    seen = {alert_settings.WATCH_BAND: 10, alert_settings.WATCH_GROWTH: 10}
    with Session(pg_org.engine) as session:
        alert_settings.save_watch(session=session, actor=first, band=15, growth=10, seen=seen)
        session.commit()
    with Session(pg_org.engine) as session, pytest.raises(alert_settings.SettingsChanged) as refused:
        alert_settings.save_watch(session=session, actor=second, band=10, growth=20, seen=seen)
    assert refused.value.changed == {alert_settings.WATCH_BAND: (10, 15)}

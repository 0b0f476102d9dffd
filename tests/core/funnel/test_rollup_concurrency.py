"""Two roll-ups at once (the `metrics` command beside the sidecar's job): the
second waits for the first, chunk by chunk, instead of failing or counting a
fact twice; the roll-up then equals one rebuilt from scratch. SQLite and
PostgreSQL (READ COMMITTED)."""

import random
import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, select

from core.funnel import intake, rollup
from db.engine import get_engine
from db.models import FunnelRollup
from tests.support import metrics_scenario as sc


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request) -> str:
    return request.getfixturevalue("db_url" if request.param == "sqlite" else "pg_url")


def rollup_rows(session: Session) -> list[tuple]:
    return sorted(tuple(r) for r in session.exec(select(FunnelRollup.platform, FunnelRollup.branch_id,
                                                        FunnelRollup.step, FunnelRollup.day, FunnelRollup.gap,
                                                        FunnelRollup.users)).all())


def test_two_roll_ups_at_once_wait_for_each_other(url, monkeypatch):
    rng = random.Random(5)
    with Session(get_engine(url), expire_on_commit=False) as session:
        sc.build_org(session)
        stores = ["000101", "000102", "101", "000201", "000202"]
        events = [sc.event(f"k{n}", rng.choice(intake.FUNNEL_STEPS[:4]),
                           (sc.NOW - timedelta(days=rng.randrange(40), seconds=rng.randrange(86400))).isoformat(),
                           f"u{rng.randrange(60)}", rng.choice(stores), rng.choice(intake.PLATFORMS))
                  for n in range(3000)]
        for start in range(0, len(events), 1000):
            intake.ingest_events(session=session, actor=sc.SYSTEM, events=events[start:start + 1000], now=sc.NOW)
            session.commit()

    real_apply = rollup._apply

    def slow_apply(session, rows):
        # Hold each chunk's transaction open long enough for the other roll-up to try its own.
        time.sleep(0.05)
        real_apply(session, rows)

    monkeypatch.setattr(rollup, "_apply", slow_apply)
    outcomes: list = []

    def roll_up() -> None:
        try:
            with Session(get_engine(url)) as session:
                outcomes.append(rollup.refresh_rollup(session=session, chunk_facts=400))
        except Exception as exc:  # noqa: BLE001 — the assertion below names it
            outcomes.append(exc)

    threads = [threading.Thread(target=roll_up) for _ in range(2)]
    started = datetime.now()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert len(outcomes) == 2 and (datetime.now() - started).total_seconds() < 120
    with Session(get_engine(url)) as session:
        assert not rollup.pending(session=session)
        assert sum(o["facts"] for o in outcomes) == session.connection().exec_driver_sql(
            "SELECT count(*) FROM funnel_activity").scalar()
        together = rollup_rows(session)
        monkeypatch.setattr(rollup, "_apply", real_apply)
        rollup.rebuild_funnel(session=session, actor=sc.SYSTEM)
        session.commit()
        rollup.refresh_rollup(session=session)
        assert together == rollup_rows(session)

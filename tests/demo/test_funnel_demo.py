"""`seed-demo` makes 导流效果 alive on first run: 30 days of funnel facts ending
today, rolled up (the chain figures equal a direct count), with adds
attributed by State. `seed_funnel` is the DEMO_EXTENSIONS entry seed-demo runs."""

import random
from datetime import datetime, timedelta

from sqlmodel import func, select

from core.funnel import intake, queries, rollup
from core.funnel.queries import MetricsFilter
from db.models import FunnelActivity
from demo import seed as demo
from demo.funnel import DAYS, seed_funnel
from tests.support.metrics_scenario import CST, SYSTEM

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=CST)


def test_the_demo_funnel_covers_30_days_ending_today(session, monkeypatch):
    assert "demo.funnel:seed_funnel" in demo.DEMO_EXTENSIONS
    # The base set only; the funnel is seeded below with a fixed clock.
    monkeypatch.setattr(demo, "DEMO_EXTENSIONS", [])
    demo.seed_demo(session=session)
    seed_funnel(session, random.Random(7), now=NOW)
    session.commit()
    days = session.exec(select(FunnelActivity.day).distinct().order_by(FunnelActivity.day)).all()
    first = NOW.date() - timedelta(days=DAYS - 1)
    assert [intake.day_of(d) for d in days] == [first + timedelta(days=n) for n in range(DAYS)]
    assert not rollup.pending(session=session)
    filters = MetricsFilter(first, NOW.date())
    chain = queries.overall(session=session, actor=SYSTEM, filters=filters).funnel
    for step in intake.FUNNEL_STEPS:
        distinct = session.exec(select(func.count(func.distinct(FunnelActivity.user_key)))
                                .where(FunnelActivity.step == step)).one()
        assert chain.count(step) == distinct > 0, step
    assert 0 < chain.add_rate < 1 and chain.added_by_state == chain.count("added")
    assert all(f.count("order_result_view") > 0 for _, f in queries.daily(session=session, actor=SYSTEM,
                                                                          filters=filters))


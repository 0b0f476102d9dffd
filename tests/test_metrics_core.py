"""Every metric against hand-computed expectations on a messy event set
(duplicates, resends, a closed store, users spanning days and branches,
events at 23:59/00:00 Shanghai time), on SQLite and PostgreSQL."""

from datetime import date

import pytest
from sqlmodel import Session, select

from core import metrics, tracking
from core.errors import InvalidInput, PermissionDenied
from core.metrics import MetricsFilter
from core.permissions import Actor
from db.engine import get_engine
from db.models import FunnelDirtyDay, Role
from tests.support import metrics_scenario as sc


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request) -> Session:
    url = request.getfixturevalue("db_url" if request.param == "sqlite" else "pg_url")
    with Session(get_engine(url), expire_on_commit=False) as session:
        yield session


@pytest.fixture
def world(db):
    return sc.load(db)


def report(db, **kwargs) -> dict:
    return metrics.report(session=db, actor=sc.SYSTEM, start=sc.START, end=sc.END, **kwargs)


def assert_figures(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value), key


def test_chain_and_branch_figures_equal_the_hand_count(db, world):
    assert world["intake"].accepted == len({e["event_id"] for e in sc.EVENTS})
    assert world["intake"].duplicates == 1
    figures = report(db)
    assert_figures(figures["overall"], sc.EXPECTED["overall"])
    assert [b["branch_code"] for b in figures["branches"]] == ["BJ01", "SH01"]
    for row in figures["branches"]:
        assert_figures({k: v for k, v in row.items() if k not in ("branch_code", "branch_name")},
                       sc.EXPECTED[row["branch_code"]])


def test_branch_option_reports_that_branch_only(db, world):
    figures = report(db, branch_code="SH01")
    assert_figures(figures["overall"], sc.EXPECTED["SH01"])
    assert [b["branch_code"] for b in figures["branches"]] == ["SH01"]


def test_a_user_on_several_days_counts_once_and_days_cut_at_shanghai_midnight(db, world):
    days = metrics.daily(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.END))
    views = {day: funnel.count("order_result_view") for day, funnel in days}
    # Nov 1: u1, u2 (23:59:30). Nov 2: u1, u2 (00:00 at 000102), u6. Nov 3: u1, u5 (23:59:59).
    assert views == {date(2026, 11, 1): 2, date(2026, 11, 2): 3, date(2026, 11, 3): 2}
    # The sum of the days is 7, the range has 4 distinct users.
    later = metrics.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(date(2026, 11, 2), sc.END))
    assert later.funnel.count("order_result_view") == 4  # u1 seen the day before still counts once
    one_day = metrics.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(date(2026, 11, 3), sc.END))
    assert one_day.funnel.count("order_result_view") == 2
    assert one_day.funnel.count("add_click") == 1  # u1 again, first time within this range


def test_store_and_platform_filters(db, world):
    store = world["stores"]["000101"]
    figures = metrics.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.END, store_id=store.id))
    assert [figures.funnel.count(s) for s in tracking.FUNNEL_STEPS] == [2, 1, 2, 1, 1]
    assert (figures.open_stores, figures.bound_stores) == (1, 1)
    app = metrics.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.END, platform="app"))
    assert app.funnel.count("order_result_view") == 3  # u1, u5, u6
    assert app.funnel.count("added") is None and app.funnel.add_rate is None  # WeCom gives no platform
    h5_south = metrics.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(
        sc.START, sc.END, branch_id=world["south"].id, platform="h5"))
    assert h5_south.funnel.count("order_result_view") == 1


def test_store_drill_down(db, world):
    rows = metrics.by_store(session=db, actor=sc.SYSTEM,
                            filters=MetricsFilter(sc.START, sc.END, branch_id=world["north"].id))
    by_id = {r.key: r for r in rows}
    assert set(by_id) == {"000101", "000102", "101", "000103"}
    assert by_id["000102"].funnel.count("order_result_view") == 1
    assert by_id["000103"].funnel.count("order_result_view") == 1 and by_id["000103"].open_stores == 0
    assert (by_id["101"].open_stores, by_id["101"].bound_stores) == (1, 0)
    assert by_id["000101"].funnel.count("added") == 1


def test_late_events_change_later_days_correctly(db, world):
    # u5 also viewed on Nov 1, sent after the roll-up: Nov 3 must stop counting u5 as new.
    late = [sc.event("late1", "order_result_view", "2026-11-01T08:00:00+08:00", "u5", "000202")]
    tracking.ingest_events(session=db, actor=sc.SYSTEM, events=late)
    db.commit()
    assert metrics.pending_days(session=db) == 1
    metrics.refresh_rollup(session=db)
    db.commit()
    assert metrics.pending_days(session=db) == 0
    assert report(db)["overall"]["order_result_users"] == 4
    nov3 = metrics.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(date(2026, 11, 3), sc.END))
    assert nov3.funnel.count("order_result_view") == 2


def test_resending_everything_changes_nothing(db, world):
    again = tracking.ingest_events(session=db, actor=sc.SYSTEM, events=sc.EVENTS)
    db.commit()
    assert (again.accepted, again.duplicates) == (0, len(sc.EVENTS))
    assert db.exec(select(FunnelDirtyDay)).all() == []
    assert_figures(report(db)["overall"], sc.EXPECTED["overall"])


def test_a_dirty_mark_made_during_a_roll_up_survives_it(db, world):
    tracking.mark_days_dirty(session=db, days=[tracking.number_of(sc.START)])
    dirty = db.exec(select(FunnelDirtyDay)).one()
    # Intake marks the same day again after the roll-up read the marks.
    tracking.mark_days_dirty(session=db, days=[dirty.day])
    db.exec(select(FunnelDirtyDay)).one()
    from sqlalchemy import delete
    removed = db.exec(delete(FunnelDirtyDay).where(FunnelDirtyDay.day == dirty.day,
                                                   FunnelDirtyDay.version == 1)).rowcount
    assert removed == 0  # compare-and-set: the newer mark stays for the next run


def test_previous_period_is_the_same_length_before(db, world):
    filters = MetricsFilter(date(2026, 11, 2), date(2026, 11, 3))
    before = metrics.previous_period(session=db, actor=sc.SYSTEM, filters=filters)
    # Oct 31 – Nov 1: u3 (Oct 31), u1 and u2 (Nov 1).
    assert before.funnel.count("order_result_view") == 3


def test_branch_manager_sees_own_branch_only(db, world):
    manager = Actor(name="m", role=Role.branch_manager, user_id=1, branch_id=world["south"].id)
    figures = metrics.report(session=db, actor=manager, start=sc.START, end=sc.END)
    assert [b["branch_code"] for b in figures["branches"]] == ["SH01"]
    assert_figures(figures["overall"], sc.EXPECTED["SH01"])
    with pytest.raises(PermissionDenied):
        metrics.overall(session=db, actor=manager, filters=MetricsFilter(sc.START, sc.END, branch_id=world["north"].id))
    with pytest.raises(PermissionDenied):
        metrics.overall(session=db, actor=manager, filters=MetricsFilter(
            sc.START, sc.END, store_id=world["stores"]["000101"].id))
    with pytest.raises(PermissionDenied):
        metrics.unattributed_adds(session=db, actor=Actor(name="x", role=Role.viewer, user_id=2,
                                                          branch_id=world["south"].id),
                                  filters=MetricsFilter(sc.START, sc.END, branch_id=world["north"].id))


def test_unattributed_adds_are_named_and_bad_ranges_refused(db, world):
    assert metrics.unattributed_adds(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.END)) == 1
    with pytest.raises(InvalidInput) as exc:
        metrics.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.END, sc.START))
    assert exc.value.key == "metrics.bad_range"
    with pytest.raises(InvalidInput) as exc:
        metrics.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(date(2025, 1, 1), sc.END))
    assert exc.value.key == "metrics.range_too_long"


def test_the_sidecar_job_rolls_up_pending_days(db, world):
    from core.scheduling.jobs import JobContext, load_jobs, run_job

    spec = next(s for s in load_jobs() if s.id == "metrics_rollup")
    assert spec.order == 40
    tracking.ingest_events(session=db, actor=sc.SYSTEM, events=[
        sc.event("job1", "entry_click", "2026-11-03T09:00:00+08:00", "u5", "000202")])
    db.commit()
    assert run_job(spec, JobContext(engine=db.get_bind(), holder="test"))
    db.expire_all()
    assert metrics.pending_days(session=db) == 0
    assert report(db)["overall"]["entry_click_users"] == 2

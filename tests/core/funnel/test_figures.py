"""Every metric against hand-computed expectations on a messy event set
(duplicates, resends, a closed store, users spanning days and branches,
events at 23:59/00:00 Shanghai time), on SQLite and PostgreSQL; the roll-up
with adds only, late facts, facts arriving during a roll-up, and a zone change."""

import threading
from datetime import date, datetime

import pytest
from sqlmodel import Session, select

from base.config import get_settings
from base.errors import InvalidInput, PermissionDenied
from core.auth.permissions import Actor
from core.funnel import contacts, intake, queries, rollup
from core.funnel.queries import MetricsFilter
from db.engine import get_engine
from db.models import FunnelActivity, FunnelPending, Role
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
    return queries.report(session=db, actor=sc.SYSTEM, start=sc.START, end=sc.END, **kwargs)


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
    days = queries.daily(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.END))
    views = {day: funnel.count("order_result_view") for day, funnel in days}
    # Nov 1: u1, u2 (23:59:30). Nov 2: u1, u2 (00:00 at 000102), u6. Nov 3: u1, u5 (23:59:59).
    assert views == {date(2026, 11, 1): 2, date(2026, 11, 2): 3, date(2026, 11, 3): 2}
    # The sum of the days is 7, the range has 4 distinct users.
    later = queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(date(2026, 11, 2), sc.END))
    assert later.funnel.count("order_result_view") == 4  # u1 seen the day before still counts once
    one_day = queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(date(2026, 11, 3), sc.END))
    assert one_day.funnel.count("order_result_view") == 2
    assert one_day.funnel.count("add_click") == 1  # u1 again, first time within this range


def test_store_and_platform_filters(db, world):
    store = world["stores"]["000101"]
    figures = queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.END, store_id=store.id))
    assert [figures.funnel.count(s) for s in intake.FUNNEL_STEPS] == [2, 1, 2, 1, 1]
    assert (figures.open_stores, figures.bound_stores) == (1, 1)
    app = queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.END, platform="app"))
    assert app.funnel.count("order_result_view") == 3  # u1, u5, u6
    assert app.funnel.count("added") is None and app.funnel.add_rate is None  # WeCom gives no platform
    h5_south = queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(
        sc.START, sc.END, branch_id=world["south"].id, platform="h5"))
    assert h5_south.funnel.count("order_result_view") == 1


def test_store_drill_down(db, world):
    rows = queries.by_store(session=db, actor=sc.SYSTEM,
                            filters=MetricsFilter(sc.START, sc.END, branch_id=world["north"].id))
    by_id = {r.key: r for r in rows}
    assert set(by_id) == {"000101", "000102", "101", "000103"}
    assert by_id["000102"].funnel.count("order_result_view") == 1
    assert by_id["000103"].funnel.count("order_result_view") == 1 and by_id["000103"].open_stores == 0
    assert (by_id["101"].open_stores, by_id["101"].bound_stores) == (1, 0)
    assert by_id["000101"].funnel.count("added") == 1


def ingest(db, events) -> intake.IntakeResult:
    result = intake.ingest_events(session=db, actor=sc.SYSTEM, events=events, now=sc.NOW)
    db.commit()
    return result


def test_late_events_change_later_days_correctly(db, world):
    # u5 also viewed on Nov 1, sent after the roll-up: Nov 3 must stop counting u5 as new.
    ingest(db, [sc.event("late1", "order_result_view", "2026-11-01T08:00:00+08:00", "u5", "000202")])
    assert rollup.pending(session=db).facts == 1
    assert rollup.refresh_rollup(session=db) == {"facts": 1, "moved_stores": 0}
    assert not rollup.pending(session=db)
    assert report(db)["overall"]["order_result_users"] == 4
    nov3 = queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(date(2026, 11, 3), sc.END))
    assert nov3.funnel.count("order_result_view") == 2
    nov1 = queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.START))
    assert nov1.funnel.count("order_result_view") == 3  # u1, u2 and now u5


def test_resending_everything_changes_nothing(db, world):
    again = ingest(db, sc.EVENTS)
    assert (again.accepted, again.duplicates) == (0, len(sc.EVENTS))
    assert db.exec(select(FunnelPending)).all() == []
    assert_figures(report(db)["overall"], sc.EXPECTED["overall"])


def test_a_fact_arriving_during_a_roll_up_waits_for_the_next_one(db, world, monkeypatch):
    """Intake commits a new fact while a roll-up is between reading its chunk
    and committing (PostgreSQL lets it through; SQLite makes it wait for the
    roll-up's write lock). The roll-up takes in only what it read; the new
    fact stays pending and the next run counts it."""
    ingest(db, [sc.event("late1", "order_result_view", "2026-11-01T08:00:00+08:00", "u5", "000202")])
    url = db.get_bind().url.render_as_string(hide_password=False)
    arrived = threading.Event()
    outcome: list = []

    def send_u9() -> None:
        with Session(get_engine(url)) as other:
            outcome.append(intake.ingest_events(session=other, actor=sc.SYSTEM, now=sc.NOW, events=[
                sc.event("during1", "order_result_view", "2026-11-02T10:00:00+08:00", "u9", "000101")]))
            other.commit()
        arrived.set()

    real_apply = rollup._apply
    sender = threading.Thread(target=send_u9)

    def apply_while_intake_runs(session, rows):
        if not sender.is_alive() and not arrived.is_set():
            sender.start()
            arrived.wait(1.0)  # PostgreSQL: committed by now; SQLite: still waiting for the lock
        real_apply(session, rows)

    monkeypatch.setattr(rollup, "_apply", apply_while_intake_runs)
    assert rollup.refresh_rollup(session=db)["facts"] == 1
    sender.join(30)
    assert outcome and outcome[0].accepted == 1
    monkeypatch.setattr(rollup, "_apply", real_apply)
    assert rollup.pending(session=db).facts == 1
    assert report(db)["overall"]["order_result_users"] == 4  # u9 not yet
    rollup.refresh_rollup(session=db)
    assert report(db)["overall"]["order_result_users"] == 5
    assert not rollup.pending(session=db)


def test_adds_only_roll_up(db):
    """One add callback and no tracking events at all (the platform scopes are empty)."""
    org = sc.build_org(db)
    contacts.record_contact_change(session=db, actor=sc.SYSTEM, change=sc.CHANGES[0])
    db.commit()
    assert rollup.refresh_rollup(session=db)["facts"] == 1
    figures = report(db)["overall"]
    assert (figures["added_customers"], figures["guide_view_users"], figures["add_rate"]) == (1, 0, None)
    store = org["stores"]["000101"].id
    assert queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(
        sc.START, sc.END, store_id=store)).funnel.count("added") == 1


def test_adds_and_events_on_different_days(db):
    sc.build_org(db)
    ingest(db, [sc.event("d1", "guide_view", "2026-11-01T10:00:00+08:00", "u1", "000101")])
    rollup.refresh_rollup(session=db)
    # Only an add on a later day is pending now.
    contacts.record_contact_change(session=db, actor=sc.SYSTEM, change=sc.change(
        contacts.ADDED, "store101", "wmZ", datetime(2026, 11, 3, 9, 0, tzinfo=sc.CST)))
    db.commit()
    assert rollup.refresh_rollup(session=db)["facts"] == 1
    figures = report(db)["overall"]
    assert (figures["guide_view_users"], figures["added_customers"], figures["add_rate"]) == (1, 1, 1.0)
    # ... and the reverse: an event after the last add.
    ingest(db, [sc.event("d2", "guide_view", "2026-11-03T10:00:00+08:00", "u2", "000101", "h5")])
    rollup.refresh_rollup(session=db)
    assert report(db)["overall"]["guide_view_users"] == 2


def test_adds_attributed_by_state_are_counted_apart(db, world):
    chain = queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.END))
    # wmA by the binding of store101, wmB by State 000201.
    assert (chain.funnel.count("added"), chain.funnel.added_by_state) == (2, 1)
    south = queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.END,
                                                                             branch_id=world["south"].id))
    assert (south.funnel.count("added"), south.funnel.added_by_state) == (1, 1)
    app = queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.END, platform="app"))
    assert app.funnel.added_by_state is None


def test_days_stay_in_the_recorded_zone_until_rebuilt(db, world, monkeypatch):
    """CONSOLE_TIMEZONE changes from Shanghai to UTC: new facts are still cut
    in Shanghai (days never mix two zones), the change is reported, and
    rebuild-funnel recuts every day from the kept events."""
    monkeypatch.setenv("CONSOLE_TIMEZONE", "UTC")
    get_settings.cache_clear()
    change = rollup.zone_change(session=db)
    assert (change.recorded, change.configured) == ("Asia/Shanghai", "UTC")
    # 2026-11-01T16:00Z is Nov 2 in Shanghai, Nov 1 in UTC.
    ingest(db, [sc.event("z1", "entry_click", "2026-11-01T16:30:00Z", "u7", "000201")])
    assert db.exec(select(FunnelActivity.day).where(FunnelActivity.user_key == "u7",
                                                    FunnelActivity.step == "entry_click")).one() == \
        intake.number_of(date(2026, 11, 2))
    db.commit()
    funnel_events = {e["event_id"] for e in sc.EVENTS if e["event"] != "jump_fail"} | {"z1"}
    assert rollup.rebuild_funnel(session=db, actor=sc.SYSTEM)["events"] == len(funnel_events)
    db.commit()
    rollup.refresh_rollup(session=db)
    assert rollup.zone_change(session=db) is None
    days = queries.daily(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.END))
    views = {day: funnel.count("order_result_view") for day, funnel in days}
    # UTC days: Nov 1 u1 (02:00Z), u2 (15:59:30Z and 16:00Z); Nov 2 u1, u6;
    # Nov 3 u1 (04:00Z), u5 (15:59:59Z), u4 (16:00Z, now inside the range).
    assert views == {date(2026, 11, 1): 2, date(2026, 11, 2): 2, date(2026, 11, 3): 3}
    assert report(db)["overall"]["added_customers"] == 2
    assert report(db)["overall"]["entry_click_users"] == 2
    with pytest.raises(PermissionDenied):
        rollup.rebuild_funnel(session=db, actor=Actor(name="o", role=Role.hq_operator, user_id=1))


def test_previous_period_is_the_same_length_before(db, world):
    filters = MetricsFilter(date(2026, 11, 2), date(2026, 11, 3))
    before = queries.previous_period(session=db, actor=sc.SYSTEM, filters=filters)
    # Oct 31 – Nov 1: u3 (Oct 31), u1 and u2 (Nov 1).
    assert before.funnel.count("order_result_view") == 3


def test_branch_manager_sees_own_branch_only(db, world):
    manager = Actor(name="m", role=Role.branch_manager, user_id=1, branch_id=world["south"].id)
    figures = queries.report(session=db, actor=manager, start=sc.START, end=sc.END)
    assert [b["branch_code"] for b in figures["branches"]] == ["SH01"]
    assert_figures(figures["overall"], sc.EXPECTED["SH01"])
    with pytest.raises(PermissionDenied):
        queries.overall(session=db, actor=manager, filters=MetricsFilter(sc.START, sc.END, branch_id=world["north"].id))
    with pytest.raises(PermissionDenied):
        queries.overall(session=db, actor=manager, filters=MetricsFilter(
            sc.START, sc.END, store_id=world["stores"]["000101"].id))
    with pytest.raises(PermissionDenied):
        queries.unattributed_adds(session=db, actor=Actor(name="x", role=Role.viewer, user_id=2,
                                                          branch_id=world["south"].id),
                                  filters=MetricsFilter(sc.START, sc.END, branch_id=world["north"].id))


def test_unattributed_adds_are_named_and_bad_ranges_refused(db, world):
    assert queries.unattributed_adds(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.END)) == 1
    with pytest.raises(InvalidInput) as exc:
        queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.END, sc.START))
    assert exc.value.key == "funnel.bad_range"
    with pytest.raises(InvalidInput) as exc:
        queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(date(2025, 1, 1), sc.END))
    assert exc.value.key == "funnel.range_too_long"


def test_the_sidecar_job_rolls_up_pending_days(db, world):
    from core.scheduling.jobs import JobContext, load_jobs, run_job

    spec = next(s for s in load_jobs() if s.id == "funnel.rollup")
    assert spec.order == 40
    ingest(db, [sc.event("job1", "entry_click", "2026-11-03T09:00:00+08:00", "u5", "000202")])
    assert run_job(spec, JobContext(engine=db.get_bind(), holder="test"))
    db.expire_all()
    assert not rollup.pending(session=db)
    assert report(db)["overall"]["entry_click_users"] == 2


def test_a_moved_store_takes_its_history_to_its_new_branch(db, world):
    """Figures follow a store's current branch: chain figure, branch table,
    drill-down and store filter agree after 000202 moves from SH01 to BJ01."""
    north, south = world["north"].id, world["south"].id
    moved = world["stores"]["000202"]
    moved.branch_id = north
    db.add(moved)
    db.commit()
    assert rollup.pending(session=db).moved_stores == 1
    assert rollup.refresh_rollup(session=db)["moved_stores"] == 1
    assert not rollup.pending(session=db)
    figures = report(db)
    assert_figures(figures["overall"], {**sc.EXPECTED["overall"], "open_stores": 5, "bound_stores": 2})
    rows = {b["branch_code"]: b for b in figures["branches"]}
    # u5 viewed 000202 on Nov 3, when it was still in SH01: now a BJ01 user.
    assert (rows["BJ01"]["order_result_users"], rows["SH01"]["order_result_users"]) == (4, 1)
    assert (rows["BJ01"]["open_stores"], rows["SH01"]["open_stores"]) == (4, 1)
    drill = {r.key: r for r in queries.by_store(session=db, actor=sc.SYSTEM,
                                                filters=MetricsFilter(sc.START, sc.END, branch_id=north))}
    assert drill["000202"].funnel.count("order_result_view") == 1
    assert "000202" not in {r.key for r in queries.by_store(session=db, actor=sc.SYSTEM,
                                                             filters=MetricsFilter(sc.START, sc.END, branch_id=south))}
    manager = Actor(name="m", role=Role.branch_manager, user_id=1, branch_id=north)
    store_view = queries.overall(session=db, actor=manager, filters=MetricsFilter(sc.START, sc.END,
                                                                                 store_id=moved.id))
    assert store_view.funnel.count("order_result_view") == 1
    with pytest.raises(InvalidInput):
        queries.overall(session=db, actor=sc.SYSTEM, filters=MetricsFilter(sc.START, sc.END, branch_id=south,
                                                                          store_id=moved.id))
    nov3 = queries.daily(session=db, actor=manager, filters=MetricsFilter(sc.END, sc.END))
    assert nov3[0][1].count("order_result_view") == 1  # u5 at 000202 (BJ01 had no view that day before)


def test_an_event_read_before_a_move_is_filed_under_the_new_branch(db, world, monkeypatch):
    """Intake read 000202's branch (SH01) just before the move committed: the
    roll-up files the fact under the store's branch all the same."""
    north = world["north"].id
    stale = intake._store_lookup(db, {"000202"})
    moved = world["stores"]["000202"]
    moved.branch_id = north
    db.add(moved)
    db.commit()
    rollup.refresh_rollup(session=db)
    monkeypatch.setattr(intake, "_store_lookup", lambda session, ids: stale)
    ingest(db, [sc.event("stale1", "entry_click", "2026-11-02T10:00:00+08:00", "u8", "000202")])
    rollup.refresh_rollup(session=db)
    rows = {b["branch_code"]: b for b in report(db)["branches"]}
    assert (rows["BJ01"]["entry_click_users"], rows["SH01"]["entry_click_users"]) == (2, 0)
    assert db.exec(select(FunnelActivity.branch_id).where(FunnelActivity.user_key == "u8")).one() == north

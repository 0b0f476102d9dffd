"""Migration 0009 on a database that already holds funnel facts: every fact
becomes pending, a store that moved is filed under its current branch, adds
attributed by State get their own fact, and the next roll-up gives the
scenario's hand-counted figures. Downgrading goes back to dirty days."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from alembic import command
from sqlalchemy import text
from sqlmodel import Session

from core.funnel import queries, rollup
from core.funnel.intake import number_of, record_activity
from db.engine import get_engine
from db.migrate import alembic_config
from tests.conftest import point_settings_at
from tests.support import metrics_scenario as sc


def _account_as_of_0008(session: Session, userid: str, *, name: str, count: int) -> SimpleNamespace:
    """An account row with the columns the table had at 0008 (today's model has more)."""
    row = session.connection().execute(text(
        "INSERT INTO account (userid, name, capacity_limit, status, customer_count, version, created_at, updated_at) "
        "VALUES (:userid, :name, 5000, 'active', :count, 1, '2026-10-01 00:00:00', '2026-10-01 00:00:00') "
        "RETURNING id"), {"userid": userid, "name": name, "count": count}).one()
    session.commit()
    return SimpleNamespace(id=row.id, userid=userid)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_url(request, tmp_path: Path, monkeypatch) -> str:
    """A database at 0008 with the scenario's facts as the previous version stored them."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"migration_{tmp_path.name[-8:]}")
    point_settings_at(monkeypatch, url)
    command.upgrade(alembic_config(url), "0008_alerts")
    engine = get_engine(url)
    with Session(engine) as session:
        org = sc.build_org(session, account_maker=_account_as_of_0008, codes=False)
        ids = {code: store.id for code, store in org["stores"].items()}
        north, south = org["north"].id, org["south"].id
        facts = [
            ("order_result_view", "u1", sc.START, "000101", "app", north),
            ("order_result_view", "u5", sc.END, "000202", "app", north),  # received while 000202 was in BJ01
            ("guide_view", "u7", sc.START, "000201", "app", south),
            ("added", "wmB", sc.END, "000201", "", south),
            ("added", "wmA", sc.END, "000101", "", north),
        ]
        for step, user, day, store, platform, branch in facts:
            session.connection().execute(text(
                "INSERT INTO funnel_activity (step, user_key, day, store_id, platform, branch_id) "
                "VALUES (:step, :user, :day, :store, :platform, :branch)"),
                {"step": step, "user": user, "day": number_of(day), "store": ids[store], "platform": platform,
                 "branch": branch})
        session.connection().execute(text(
            "INSERT INTO contact_event (dedupe_key, change_type, corp_id, userid, external_userid, state, occurred_at, "
            "store_id, branch_id, received_at) VALUES "
            "('k1', 'add_external_contact', 'c', 'store201', 'wmB', ' 000201 ', '2026-11-03 01:00:00', :s201, :south, "
            "'2026-11-03 01:00:00'), "
            "('k2', 'add_external_contact', 'c', 'store101', 'wmA', '', '2026-11-03 01:00:00', :s101, :north, "
            "'2026-11-03 01:00:00')"), {"s201": ids["000201"], "s101": ids["000101"], "south": south, "north": north})
        session.connection().execute(text("INSERT INTO funnel_dirty_day (day, version) VALUES (:day, 1)"),
                                     {"day": number_of(sc.START)})
        session.commit()
    return url


def test_upgrade_files_every_fact_for_the_roll_up_and_downgrade_returns(old_url):
    command.upgrade(alembic_config(old_url), "head")
    engine = get_engine(old_url)
    with Session(engine) as session:
        scalar = lambda sql: session.connection().execute(text(sql)).scalar()  # noqa: E731
        assert scalar("SELECT count(*) FROM funnel_pending") == 6  # five facts and wmB's State fact
        assert scalar("SELECT count(*) FROM funnel_rollup") == 0
        assert scalar("SELECT zone FROM funnel_state") == "Asia/Shanghai"
        assert scalar("SELECT count(*) FROM funnel_activity a JOIN store s ON s.id = a.store_id "
                      "WHERE a.branch_id <> s.branch_id") == 0
        assert scalar("SELECT user_key FROM funnel_activity WHERE step = 'added_by_state'") == "wmB"
        rollup.refresh_rollup(session=session)
        rows = {b["branch_code"]: b for b in queries.report(session=session, actor=sc.SYSTEM, start=sc.START,
                                                            end=sc.END)["branches"]}
        # u5 at 000202 belongs to SH01, the store's branch, not to BJ01 it was tagged with.
        assert (rows["BJ01"]["order_result_users"], rows["SH01"]["order_result_users"]) == (1, 1)
        assert (rows["SH01"]["added_customers"], rows["BJ01"]["added_customers"]) == (1, 1)
        chain = queries.overall(session=session, actor=sc.SYSTEM, filters=queries.MetricsFilter(sc.START, sc.END))
        assert chain.funnel.added_by_state == 1
        # A fact the roll-up has not taken in yet marks its day dirty for the old version.
        record_activity(session=session, rows=[{"step": "entry_click", "user_key": "u1", "day": number_of(sc.END),
                                                "store_id": 1, "platform": "app", "branch_id": 1}])
        session.commit()
    command.downgrade(alembic_config(old_url), "0008_alerts")
    with Session(engine) as session:
        scalar = lambda sql: session.connection().execute(text(sql)).scalar()  # noqa: E731
        assert scalar("SELECT count(*) FROM funnel_activity WHERE step = 'added_by_state'") == 0
        assert scalar("SELECT day FROM funnel_dirty_day") == number_of(sc.END)

"""`python -m console import-bindings`, and the preview/commit race on PostgreSQL."""

import threading

import pytest
from sqlmodel import Session, select

from base.errors import ConcurrentEdit
from console.cli import main
from core.bindings import service as bindings
from core.bindings.imports import commit, judge, read
from db.models import Account, Binding, BindingImport, Role
from tests.support import factories
from tests.support.binding_sheets import csv_bytes, xlsx_bytes
from tests.support.factories import find_store, make_account


def test_cli_prints_each_row_error_exits_1_and_writes_nothing(org, make_user, tmp_path, capsys, session):
    make_user(Role.branch_manager, org["north"], username="bj_manager")
    sheet = tmp_path / "bad.xlsx"
    sheet.write_bytes(xlsx_bytes([["BJ01", "000101", "", "good.one", "甲"], ["BJ01", 102, "", "b", "乙"],
                                  ["SH01", "000201", "", "c", "丙"]]))
    assert main(["import-bindings", str(sheet), "--user", "bj_manager"]) == 1
    err = capsys.readouterr().err
    assert "row 3:" in err and "开头的 0" in err
    assert "row 4:" in err and "SH01" in err
    assert "row 2:" not in err
    assert session.exec(select(Binding)).all() == [] and session.exec(select(Account)).all() == []


def test_cli_dry_run_then_commit_then_same_file_again(org, make_user, tmp_path, capsys, session):
    make_user(Role.branch_manager, org["north"], username="bj_manager")
    sheet = tmp_path / "good.csv"
    sheet.write_bytes(csv_bytes([["BJ01", "000101", "", "good.one", "甲"]], encoding="gbk"))
    assert main(["import-bindings", str(sheet), "--user", "bj_manager", "--dry-run"]) == 0
    assert "would import 1 rows: 1 new" in capsys.readouterr().out
    assert session.exec(select(Binding)).all() == []
    assert main(["import-bindings", str(sheet), "--user", "bj_manager"]) == 0
    assert "imported batch #" in capsys.readouterr().out
    session.expire_all()
    assert len(session.exec(select(Binding)).all()) == 1
    assert main(["import-bindings", str(sheet), "--user", "bj_manager"]) == 0
    assert "already imported" in capsys.readouterr().out
    assert len(session.exec(select(BindingImport)).all()) == 1


def test_cli_refuses_unknown_users_and_viewers(org, make_user, tmp_path, capsys):
    make_user(Role.viewer, username="analyst")
    sheet = tmp_path / "good.csv"
    sheet.write_bytes(csv_bytes([["BJ01", "000101", "", "good.one", "甲"]]))
    assert main(["import-bindings", str(sheet), "--user", "nobody"]) == 1
    assert "nobody" in capsys.readouterr().err
    assert main(["import-bindings", str(sheet), "--user", "analyst"]) == 1
    assert "没有权限" in capsys.readouterr().err


@pytest.fixture
def pg_actors(pg_org):
    """BJ01's branch manager and an HQ operator, on PostgreSQL."""
    with Session(pg_org.engine, expire_on_commit=False) as session:
        return (factories.make_user(session, Role.branch_manager, pg_org.north, username="bj_manager").actor,
                factories.make_user(session, Role.hq_operator, username="operator").actor)


@pytest.mark.postgres
def test_postgres_concurrent_commits_of_one_store_leave_exactly_one(pg_org, pg_actors):
    (engine, north), (manager, operator) = (pg_org.engine, pg_org.north), pg_actors
    previews = []
    for actor, userid in ((manager, "from.manager"), (operator, "from.operator")):
        parsed = read.parse_sheet(csv_bytes([["BJ01", "000101", "", userid, "甲"],
                                           ["BJ01", "000102", "", userid + "2", "乙"]]), f"{userid}.csv")
        with Session(engine) as session:
            previews.append((actor, judge.preview(session=session, actor=actor, parsed=parsed, branch_id=north.id)))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def run(actor, preview):
        barrier.wait()
        try:
            with Session(engine) as session:
                commit.commit(session=session, actor=actor, preview=preview)
                session.commit()
            outcomes.append("committed")
        except ConcurrentEdit:
            outcomes.append("refused")

    threads = [threading.Thread(target=run, args=p) for p in previews]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["committed", "refused"]
    with Session(engine) as session:
        current = session.exec(select(Binding).where(Binding.ended_at.is_(None))).all()
        assert len(current) == 2  # both stores from the one winning file, nothing from the other
        assert len({b.account_id for b in current}) == 2
        assert len(session.exec(select(BindingImport)).all()) == 1
        winner = session.exec(select(BindingImport)).one().uploaded_by_name
        users = {session.get(Account, b.account_id).userid for b in current}
        assert users == ({"from.manager", "from.manager2"} if winner == "bj_manager"
                         else {"from.operator", "from.operator2"})


@pytest.mark.postgres
def test_postgres_replacement_ends_the_old_binding(pg_org, pg_actors):
    engine, (manager, operator) = pg_org.engine, pg_actors
    with Session(engine) as session:
        account = make_account(session, "old.one", name="旧号")
        bindings.start_binding(session=session, actor=operator, store=find_store(session, "000101"), account=account)
        session.commit()
    parsed = read.parse_sheet(csv_bytes([["BJ01", "000101", "", "new.one", "新号"]]), "swap.csv")
    with Session(engine) as session:
        preview = judge.preview(session=session, actor=manager, parsed=parsed)
    assert preview.changed_count == 1 and preview.rows[0].previous_userid == "old.one"
    with Session(engine) as session:
        commit.commit(session=session, actor=manager, preview=preview)
        session.commit()
    with Session(engine) as session:
        ended = session.exec(select(Binding).where(Binding.end_reason == "replaced")).one()
        assert session.get(Account, ended.account_id).userid == "old.one"
        assert session.exec(select(Account).where(Account.userid == "old.one")).one() is not None

"""A store import on SQLite is an import run: staged, checked, then applied in
chunks that each commit. A run killed between chunks is finished by whoever
comes next and ends exactly as a straight run; while it applies, other
imports are refused; a store changed since the file was read refuses it whole."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit
from base.timeutil import utcnow
from core.auth.permissions import system_actor
from core.bindings import service as bindings
from core.bindings.imports import commit as sheet_commit
from core.bindings.imports import judge, read
from core.directory import stores
from core.import_runs import runs
from core.import_runs.jobs import resume_job
from core.scheduling.jobs import JobContext
from db.engine import get_engine
from db.migrate import upgrade_to_head
from db.models import AuditEntry, Binding, BindingImport, Branch, ImportRun, ImportRunStep, Store
from i18n import error_text
from tests.support.binding_sheets import csv_bytes
from tests.support.factories import bind, find_store, make_org
from tests.support.import_runs import Killed, killed_after_chunks

ACTOR = system_actor("crm")
HEADER = "分公司编码,分公司名称,CRM门店ID,门店名称,状态\n"
STORES = 600


def store_list(renamed: bool) -> bytes:
    """600 stores in two new branches; renamed: every store renamed and a tenth closed."""
    lines = [HEADER]
    for i in range(STORES):
        closed = renamed and i % 10 == 0
        lines.append(f"N{i % 2},新分公司{i % 2},{i:06d},门店{i}{'（新）' if renamed else ''},"
                     f"{'关闭' if closed else '营业'}\n")
    return "".join(lines).encode()


def prepared(session: Session, *, org: bool = True) -> None:
    """The org, the 600 stores as first imported, and a binding on every store the renamed list closes."""
    if org:
        make_org(session)
    stores.import_stores(session=session, actor=ACTOR, data=store_list(False), filename="first.csv")
    for i in range(0, STORES, 30):
        bind(session, f"{i:06d}", f"kf{i}")
    session.commit()


def outcome(session: Session) -> dict:
    """What a user sees afterwards, without ids and times."""
    session.expire_all()
    branch_codes = dict(session.exec(select(Branch.id, Branch.code)).all())
    return {
        "branches": sorted(session.exec(select(Branch.code, Branch.name)).all()),
        "stores": sorted((s.crm_store_id, s.name, branch_codes[s.branch_id], s.status, s.version)
                         for s in session.exec(select(Store)).all()),
        "bindings": sorted((b.store_id, b.account_id, b.ended_at is None, b.end_reason, b.shown, b.version)
                           for b in session.exec(select(Binding)).all()),
        "audit": sorted((e.action, e.entity_type, e.entity_id, e.before_json or "", e.after_json or "")
                        for e in session.exec(select(AuditEntry)).all()),
    }


@pytest.fixture
def small_steps(monkeypatch):
    """Steps of 20 stores and no pause, so that 600 stores make many chunks quickly."""
    monkeypatch.setattr(stores, "STEP_STORES", 20)
    monkeypatch.setattr(runs, "TURN_SECONDS", 0)


def abandoned(session: Session) -> ImportRun:
    """The run, with its last chunk older than ABANDONED_AFTER (its driver is gone)."""
    run = session.exec(select(ImportRun).where(col(ImportRun.state) == "applying")).one()
    session.exec(update(ImportRun).where(col(ImportRun.id) == run.id)
                 .values(heartbeat_at=utcnow() - runs.ABANDONED_AFTER - timedelta(seconds=1)))
    session.commit()
    return run


def test_a_run_killed_between_chunks_is_finished_by_the_sidecar_exactly_as_a_straight_run(
        engine, session, tmp_path, small_steps, monkeypatch):
    straight_url = f"sqlite:///{tmp_path / 'straight.db'}"
    upgrade_to_head(straight_url)
    with Session(get_engine(straight_url), expire_on_commit=False) as straight:
        prepared(straight)
        result = stores.import_stores(session=straight, actor=ACTOR, data=store_list(True), filename="crm.csv")
        assert (result.updated, result.closed_bindings) == (STORES, STORES // 30)
        expected = outcome(straight)

    prepared(session)
    killed_after_chunks(monkeypatch, 3)
    with pytest.raises(Killed):
        stores.import_stores(session=session, actor=ACTOR, data=store_list(True), filename="crm.csv")
    half = outcome(session)
    renamed = [s for s in half["stores"] if s[1].endswith("（新）")]
    assert 0 < len(renamed) < STORES  # half applied, and visible
    run = abandoned(session)
    assert 0 < run.steps_done < run.steps_total

    monkeypatch.setattr(runs, "sleep", lambda _seconds: None)
    assert resume_job(JobContext(engine=engine, holder="test")) == {"imports_finished": 1, "handovers": 0}
    assert outcome(session) == expected
    session.expire_all()
    run = session.get_one(ImportRun, run.id)
    assert (run.state, run.steps_done, run.finished_at is not None) == ("done", run.steps_total, True)
    assert json.loads(run.summary_json)["closed_bindings"] == STORES // 30
    assert session.exec(select(ImportRunStep)).all() == []  # staged steps go once applied


def test_the_next_import_finishes_an_abandoned_run_first(session, small_steps, monkeypatch):
    prepared(session)
    killed_after_chunks(monkeypatch, 2)
    with pytest.raises(Killed):
        stores.import_stores(session=session, actor=ACTOR, data=store_list(True), filename="crm.csv")
    abandoned(session)
    monkeypatch.setattr(runs, "sleep", lambda _seconds: None)
    again = stores.import_stores(session=session, actor=ACTOR, data=store_list(True), filename="crm.csv")
    assert (again.updated, again.unchanged) == (0, STORES)  # the first run was finished before this one read
    assert [r.state for r in session.exec(select(ImportRun).order_by(col(ImportRun.id))).all()] \
        == ["done", "done", "done"]


def test_another_import_is_refused_while_a_run_applies(session, small_steps, monkeypatch):
    prepared(session)
    killed_after_chunks(monkeypatch, 1)
    with pytest.raises(Killed):
        stores.import_stores(session=session, actor=ACTOR, data=store_list(True), filename="crm.csv")
    before = outcome(session)
    with pytest.raises(runs.ImportInProgress) as refused:  # its driver is alive (fresh heartbeat)
        stores.import_stores(session=session, actor=ACTOR, data=(HEADER + "N0,新分公司0,999999,另一家,营业\n").encode(),
                             filename="other.csv")
    session.rollback()
    assert "导入进行中" in error_text(refused.value) and "crm.csv" in error_text(refused.value)
    assert outcome(session) == before


def test_a_store_changed_after_staging_refuses_the_run_and_nothing_of_it_is_visible(engine, session, small_steps,
                                                                                      monkeypatch):
    prepared(session)
    before = outcome(session)
    check = runs._KINDS["stores"].check

    def someone_renames_a_store_first(checking: Session, steps: list) -> None:
        with Session(engine) as other:
            other.exec(update(Store).where(col(Store.crm_store_id) == "000599")
                       .values(name="别人改的名字", version=Store.version + 1))
            other.commit()
        check(checking, steps)

    monkeypatch.setitem(runs._KINDS, "stores", runs.Kind(check=someone_renames_a_store_first,
                                                         apply=runs._KINDS["stores"].apply))
    with pytest.raises(ConcurrentEdit) as refused:
        stores.import_stores(session=session, actor=ACTOR, data=store_list(True), filename="crm.csv")
    assert "未写入任何内容" in error_text(refused.value)
    after = outcome(session)
    assert [s for s in after["stores"] if s[0] != "000599"] == [s for s in before["stores"] if s[0] != "000599"]
    assert after["bindings"] == before["bindings"] and after["audit"] == before["audit"]
    assert session.exec(select(ImportRun.state).order_by(col(ImportRun.id).desc())).first() == "refused"
    assert session.exec(select(ImportRunStep)).all() == []


def test_a_binding_sheet_is_refused_while_a_store_run_applies(session, small_steps, monkeypatch):
    prepared(session)
    killed_after_chunks(monkeypatch, 1)
    with pytest.raises(Killed):
        stores.import_stores(session=session, actor=ACTOR, data=store_list(True), filename="crm.csv")
    parsed = read.parse_sheet(csv_bytes([["BJ01", "101", "", "zhang.san", "张三"]]), "bindings.csv")
    preview = judge.preview(session=session, actor=ACTOR, parsed=parsed, branch_id=None)
    assert preview.ok
    with pytest.raises(runs.ImportInProgress):
        sheet_commit.commit(session=session, actor=ACTOR, preview=preview, confirm_unchecked=True)
    session.rollback()
    assert session.exec(select(BindingImport)).all() == []
    assert bindings.current_for_store(session=session, store_id=find_store(session, "101").id) is None


def test_on_postgresql_the_import_is_one_transaction_of_the_same_steps(pg_org, small_steps):
    """MVCC: an open transaction there blocks neither intake nor the callback,
    so the import stays the caller's one transaction, and needs no run."""
    with Session(pg_org.engine, expire_on_commit=False) as session:
        prepared(session, org=False)
        result = stores.import_stores(session=session, actor=ACTOR, data=store_list(True), filename="crm.csv")
        assert (result.updated, result.closed_bindings) == (STORES, STORES // 30)
        session.rollback()  # the caller's transaction: nothing of it stays
        assert not any(s[1].endswith("（新）") for s in outcome(session)["stores"])
        stores.import_stores(session=session, actor=ACTOR, data=store_list(True), filename="crm.csv")
        session.commit()
        assert sum(s[1].endswith("（新）") for s in outcome(session)["stores"]) == STORES
        assert session.exec(select(ImportRun)).all() == []


def test_a_run_whose_process_died_while_staging_is_dropped_and_blocks_nothing(session, small_steps, monkeypatch):
    prepared(session)
    before = outcome(session)

    def dies(_seconds: float) -> None:
        raise Killed

    monkeypatch.setattr(runs, "sleep", dies)
    with pytest.raises(Killed):
        stores.import_stores(session=session, actor=ACTOR, data=store_list(True), filename="crm.csv")
    staging = session.exec(select(ImportRun).where(ImportRun.state == "staging")).one()
    assert outcome(session) == before
    session.exec(update(ImportRun).where(col(ImportRun.id) == staging.id)
                 .values(heartbeat_at=utcnow() - runs.ABANDONED_AFTER - timedelta(seconds=1)))
    session.commit()
    monkeypatch.setattr(runs, "sleep", lambda _seconds: None)
    result = stores.import_stores(session=session, actor=ACTOR, data=store_list(True), filename="crm.csv")
    assert (result.updated, result.resumed) == (STORES, [])
    assert [(r.filename, r.state) for r in session.exec(select(ImportRun).order_by(col(ImportRun.id))).all()] \
        == [("first.csv", "done"), ("crm.csv", "done")]  # the staged one is gone
    assert session.exec(select(ImportRunStep)).all() == []

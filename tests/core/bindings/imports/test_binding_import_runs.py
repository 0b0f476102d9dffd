"""A binding sheet on SQLite is committed as an import run: staged, checked,
then applied in chunks that each commit. Killed between chunks, it is finished
by the sidecar exactly as a straight commit; while it applies, an operator's
binding edits are refused, the capacity switch waits for the next tick and a
departed member's handover waits for the run; a binding changed since the
preview refuses it with nothing visible."""

import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit
from base.timeutil import utcnow
from core.auth.permissions import system_actor
from core.bindings import review
from core.bindings import standby as standby_lists
from core.bindings.imports import commit as sheet_commit
from core.bindings.imports import judge, read, run_commit
from core.capacity.switch import switch_accounts
from core.directory import accounts
from core.directory.members import member_changed
from core.import_runs import runs
from core.import_runs.jobs import resume_job
from core.scheduling.jobs import JobContext
from core.wecom.identity import LEFT
from db.engine import get_engine
from db.migrate import upgrade_to_head
from db.models import (
    Account,
    AuditEntry,
    Binding,
    BindingImport,
    BindingImportRow,
    Branch,
    ImportRun,
    ImportRunStep,
    StandbyAccount,
    Store,
)
from db.models.imports import BindingImportBranch
from i18n import error_text
from tests.support.binding_sheets import HEADERS, csv_bytes
from tests.support.factories import find_store, make_account, make_binding, make_branch, make_store
from tests.support.import_runs import Killed, killed_after_chunks

ACTOR = system_actor("crm")
STORES = 60
WITH_STANDBY = [*HEADERS, "备用企微账号"]


def prepared(session: Session) -> None:
    """60 stores, every even one bound to its own account; free accounts for a third of the sheet."""
    branch = make_branch(session, "BJ01", name="北京分公司")
    for i in range(STORES):
        store = make_store(session, branch, f"S{i:03d}", name=f"门店{i}")
        if i % 2 == 0:
            make_binding(session, store, make_account(session, f"old{i}", count=10, limit=100), shown=True,
                         reviewed=True)
        if i % 3 == 1:
            make_account(session, f"free{i}")
    session.commit()


def sheet() -> bytes:
    """New accounts, free ones, unchanged rows, a store taking another store's
    old account, and standby lists (new standby accounts)."""
    rows = []
    for i in range(STORES):
        userid = {0: f"new{i}", 1: f"free{i}", 2: f"old{i}" if i % 2 == 0 else f"new{i}"}[i % 3]
        if i == 4:
            userid = "old0"  # store S000 gives it up in the same sheet
        standby = f"sb{i}" if i % 5 == 0 else ""
        rows.append(["BJ01", f"S{i:03d}", f"门店{i}", userid, f"名{userid}", standby])
    return csv_bytes(rows, headers=WITH_STANDBY)


def preview_of(session: Session) -> judge.Preview:
    preview = judge.preview(session=session, actor=ACTOR, parsed=read.parse_sheet(sheet(), "bindings.csv"),
                            branch_id=None)
    assert preview.ok and preview.changes_something
    session.rollback()
    return preview


def outcome(session: Session) -> dict:
    """What users see afterwards (bindings, accounts, standby lists, audit, import history), without times."""
    session.expire_all()
    return {
        "bindings": sorted((b.id, b.store_id, b.account_id, b.ended_at is None, b.end_reason, b.shown, b.version)
                           for b in session.exec(select(Binding)).all()),
        "accounts": sorted((a.id, a.userid, a.name, a.status, a.capacity_limit, a.version)
                           for a in session.exec(select(Account)).all()),
        "standby": sorted((s.store_id, s.account_id, s.position) for s in session.exec(select(StandbyAccount)).all()),
        "audit": sorted((e.action, e.entity_type, e.entity_id, e.before_json or "", e.after_json or "")
                        for e in session.exec(select(AuditEntry)).all()),
        "imports": [(i.id, i.filename, i.sha256, i.total_rows, i.new_count, i.changed_count, i.unchanged_count,
                     i.warning_count, i.accounts_created, i.branch_id)
                    for i in session.exec(select(BindingImport)).all()],
        "import_rows": sorted((r.import_id, r.row_number, r.crm_store_id, r.wecom_userid, r.outcome,
                               r.previous_userid, r.warnings_json or "")
                              for r in session.exec(select(BindingImportRow)).all()),
        "import_branches": sorted((b.import_id, b.branch_id, b.total_rows, b.new_count, b.changed_count,
                                   b.unchanged_count, b.warning_count, b.accounts_created)
                                  for b in session.exec(select(BindingImportBranch)).all()),
    }


@pytest.fixture
def small_steps(monkeypatch):
    """Steps of 5 rows and no pause, so that 60 rows make many chunks quickly."""
    monkeypatch.setattr(run_commit, "STEP_ROWS", 5)
    monkeypatch.setattr(run_commit, "STEP_SHEET_ROWS", 10)
    monkeypatch.setattr(runs, "TURN_SECONDS", 0)


def half_applied(session: Session, monkeypatch, chunks: int = 2) -> ImportRun:
    """A run whose driver died after `chunks` chunks; its heartbeat is still fresh."""
    preview = preview_of(session)
    killed_after_chunks(monkeypatch, chunks)
    with pytest.raises(Killed):
        sheet_commit.commit(session=session, actor=ACTOR, preview=preview, confirm_unchecked=True)
    session.rollback()
    monkeypatch.setattr(runs, "sleep", lambda _seconds: None)
    run = session.exec(select(ImportRun).where(ImportRun.state == "applying")).one()
    assert 0 < run.steps_done < run.steps_total
    return run


def abandon(session: Session, run: ImportRun) -> None:
    session.exec(update(ImportRun).where(col(ImportRun.id) == run.id)
                 .values(heartbeat_at=utcnow() - runs.ABANDONED_AFTER - timedelta(seconds=1)))
    session.commit()


def resume(engine) -> dict:
    return resume_job(JobContext(engine=engine, holder="test"))


def test_a_run_killed_between_chunks_ends_exactly_as_a_straight_commit(engine, session, tmp_path, small_steps,
                                                                       monkeypatch):
    straight_url = f"sqlite:///{tmp_path / 'straight.db'}"
    upgrade_to_head(straight_url)
    with Session(get_engine(straight_url), expire_on_commit=False) as straight:
        prepared(straight)
        preview = preview_of(straight)
        # The straight commit, one transaction (as on PostgreSQL), on a twin database.
        sheet_commit._commit(straight, ACTOR, preview, None)
        straight.commit()
        expected = outcome(straight)
    assert expected["imports"][0][4:7] == (preview.new_count, preview.changed_count, preview.unchanged_count)

    prepared(session)
    run = half_applied(session, monkeypatch)
    assert outcome(session)["bindings"] != expected["bindings"]  # half written
    abandon(session, run)
    assert resume(engine) == {"imports_finished": 1, "handovers": 0}
    assert outcome(session) == expected
    session.expire_all()
    run = session.get_one(ImportRun, run.id)
    assert (run.state, run.steps_done) == ("done", run.steps_total)
    assert session.exec(select(ImportRunStep)).all() == []


def test_a_whole_run_reports_the_batch_and_when_it_finished(session, small_steps):
    prepared(session)
    preview = preview_of(session)
    result = sheet_commit.commit(session=session, actor=ACTOR, preview=preview, confirm_unchecked=True)
    assert result.run is not None and result.run.state == "done" and result.run.finished_at is not None
    batch = session.get_one(BindingImport, result.import_id)
    assert (batch.new_count, batch.changed_count) == (result.new_count, result.changed_count)
    assert find_store(session, "S004").id in {b.store_id for b in session.exec(
        select(Binding).join(Account, col(Account.id) == Binding.account_id)
        .where(Account.userid == "old0", col(Binding.ended_at).is_(None))).all()}


def test_review_standby_and_account_edits_are_refused_while_a_run_applies(session, small_steps, monkeypatch):
    prepared(session)
    half_applied(session, monkeypatch)
    before = outcome(session)
    binding = session.exec(select(Binding).where(col(Binding.ended_at).is_(None))
                           .order_by(col(Binding.id).desc())).first()
    assert binding is not None
    for attempt in (
            lambda: review.unbind(session=session, actor=ACTOR, binding_id=binding.id,
                                  expected_version=binding.version),
            lambda: review.set_shown(session=session, actor=ACTOR, versions={binding.id: binding.version},
                                     shown=False),
            lambda: review.replace_account(session=session, actor=ACTOR, binding_id=binding.id,
                                           expected_version=binding.version, userid="someone.else"),
            lambda: standby_lists.set_standby(session=session, actor=ACTOR, store_id=binding.store_id, expected=[],
                                              userids=["spare.one"]),
            lambda: accounts.update_account(session=session, actor=ACTOR, account_id=binding.account_id,
                                            expected_version=1, capacity_limit=10, status="disabled")):
        with pytest.raises(runs.ImportInProgress) as refused:
            attempt()
        session.rollback()
        assert "导入进行中" in error_text(refused.value) and "bindings.csv" in error_text(refused.value)
    assert outcome(session) == before


def at_switch_level(session: Session) -> Store:
    """A store outside the sheet whose account is full, with a standby account ready."""
    branch = session.get_one(Branch, find_store(session, "S000").branch_id)
    store = make_store(session, branch, "FULL1", name="满员门店")
    make_binding(session, store, make_account(session, "full.one", count=100, limit=100), shown=True, reviewed=True)
    session.add(StandbyAccount(store_id=store.id, account_id=make_account(session, "ready.one", status="standby").id,
                               position=0))
    session.commit()
    return store


def current_userid(session: Session, store: Store) -> str:
    session.expire_all()
    return session.exec(select(Account.userid).join(Binding, col(Binding.account_id) == Account.id)
                        .where(Binding.store_id == store.id, col(Binding.ended_at).is_(None))).one()


def test_the_switch_skips_its_tick_during_a_run_and_switches_after(engine, session, small_steps, monkeypatch):
    prepared(session)
    store = at_switch_level(session)
    run = half_applied(session, monkeypatch)
    figures = switch_accounts(engine=engine)
    assert (figures["switched"], figures["import_running"]) == (0, 1)
    assert current_userid(session, store) == "full.one"
    abandon(session, run)
    resume(engine)
    figures = switch_accounts(engine=engine)
    assert (figures["switched"], figures["import_running"]) == (1, 0)
    assert current_userid(session, store) == "ready.one"


@pytest.mark.usefixtures("settled_heap")  # it times the answer
def test_a_member_left_during_a_run_is_recorded_at_once_and_handed_over_after(engine, session, small_steps,
                                                                              monkeypatch):
    prepared(session)
    store = at_switch_level(session)
    run = half_applied(session, monkeypatch)
    started = time.perf_counter()
    with Session(engine) as callback:
        assert member_changed(session=callback, actor=ACTOR, userid="full.one", status=LEFT) is None
        callback.commit()
    assert time.perf_counter() - started < 1
    account = session.exec(select(Account).where(Account.userid == "full.one")).one()
    assert (account.member_status, account.status) == (LEFT, "active")
    assert current_userid(session, store) == "full.one"  # not yet: the run rests on the bindings
    abandon(session, run)
    assert resume(engine) == {"imports_finished": 1, "handovers": 1}
    session.expire_all()
    assert session.exec(select(Account.status).where(Account.userid == "full.one")).one() == "disabled"
    assert current_userid(session, store) == "ready.one"


def test_a_binding_changed_since_the_preview_refuses_the_commit_with_nothing_visible(engine, session, small_steps):
    prepared(session)
    preview = preview_of(session)
    with Session(engine) as other:
        binding = other.exec(select(Binding).where(Binding.store_id == find_store(other, "S000").id)).one()
        review.unbind(session=other, actor=ACTOR, binding_id=binding.id, expected_version=binding.version)
        other.commit()
    before = outcome(session)
    with pytest.raises(ConcurrentEdit):
        sheet_commit.commit(session=session, actor=ACTOR, preview=preview, confirm_unchecked=True)
    session.rollback()
    assert outcome(session) == before
    assert session.exec(select(ImportRun)).all() == []


def test_a_binding_changed_after_staging_refuses_the_run_with_nothing_visible(engine, session, small_steps,
                                                                              monkeypatch):
    prepared(session)
    preview = preview_of(session)
    check = runs._KINDS[runs.BINDINGS].check

    def someone_unbinds_first(checking: Session, steps: list) -> None:
        with Session(engine) as other:
            other.exec(update(Binding).where(Binding.store_id == find_store(other, "S002").id)
                       .values(version=Binding.version + 1))
            other.commit()
        check(checking, steps)

    monkeypatch.setitem(runs._KINDS, runs.BINDINGS, runs.Kind(check=someone_unbinds_first,
                                                                apply=runs._KINDS[runs.BINDINGS].apply))
    before = outcome(session)
    with pytest.raises(ConcurrentEdit) as refused:
        sheet_commit.commit(session=session, actor=ACTOR, preview=preview, confirm_unchecked=True)
    session.rollback()
    assert "请重新预览" in error_text(refused.value)
    after = outcome(session)
    assert [b[:6] for b in after["bindings"]] == [b[:6] for b in before["bindings"]]
    assert after["imports"] == [] and after["audit"] == before["audit"]
    assert session.exec(select(ImportRun.state)).all() == ["refused"]
    assert session.exec(select(ImportRunStep)).all() == []


def test_on_postgresql_the_commit_stays_one_transaction_of_the_caller(pg_url):
    engine = get_engine(pg_url)
    with Session(engine, expire_on_commit=False) as session:
        prepared(session)
        preview = preview_of(session)
        result = sheet_commit.commit(session=session, actor=ACTOR, preview=preview, confirm_unchecked=True)
        assert result.run is None and result.import_id is not None
        with Session(engine) as other:  # nothing visible before the caller commits
            assert other.exec(select(BindingImport)).all() == []
        session.rollback()
        assert session.exec(select(BindingImport)).all() == [] and session.exec(select(ImportRun)).all() == []
        sheet_commit.commit(session=session, actor=ACTOR, preview=preview_of(session), confirm_unchecked=True)
        session.commit()
        assert len(session.exec(select(BindingImport)).all()) == 1 and session.exec(select(ImportRun)).all() == []


def test_a_member_left_between_chunks_is_handed_over_by_the_driver_once_the_run_is_done(engine, session,
                                                                                        small_steps, monkeypatch):
    prepared(session)
    store = at_switch_level(session)
    preview = preview_of(session)
    seen = []

    def pause(_seconds: float) -> None:
        with Session(engine) as callback:
            if not seen and callback.exec(select(ImportRun).where(ImportRun.state == "applying")).first():
                seen.append(member_changed(session=callback, actor=ACTOR, userid="full.one", status=LEFT))
                callback.commit()
                assert current_userid(callback, store) == "full.one"  # held back while the run applies

    monkeypatch.setattr(runs, "sleep", pause)
    sheet_commit.commit(session=session, actor=ACTOR, preview=preview, confirm_unchecked=True)
    assert seen == [None]
    assert current_userid(session, store) == "ready.one"
    assert session.exec(select(Account.status).where(Account.userid == "full.one")).one() == "disabled"

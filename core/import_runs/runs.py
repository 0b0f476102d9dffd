"""An import run: a big import committed in bounded chunks, all or nothing for the user.

On SQLite there is one writer, and event intake and the WeCom callback wait
behind it; an import of 99,000 stores written in one transaction held the
write lock for seconds. So an import is worked out and validated first, then
staged (the run and its steps, one short transaction, nothing visible yet),
checked against what it read (a change made meanwhile refuses the run: nothing
of it becomes visible), then applied a few steps per transaction with a pause
between chunks that lets waiting writers in. From staging until the last chunk
the run blocks the other writers of what it writes (`refuse_while_applying`:
another store or binding-sheet import), so nothing can conflict half-way.

A run whose driver died is finished by whoever comes next: the next import
(page or CLI) and the sidecar's `import_runs.resume` job both resume it, so an
operator finds it 导入中 for at most a minute and then done, never half.

PostgreSQL does not take this path: readers and other writers are not blocked
by an open transaction there (MVCC), so an import stays one transaction
(`apply_in_transaction`), with the same steps."""

import importlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import perf_counter, sleep
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from base.errors import DomainError
from base.timeutil import format_display, utcnow
from core.auth.permissions import Actor, Capability, Role, require
from db.fastsql import insert_many
from db.models import ImportRun, ImportRunState, ImportRunStep
from db.typed import table_of
from db.write_turns import yield_to_urgent_writers

log = logging.getLogger("import_runs")

# The lock each chunk aims to hold, and the pause after it: longer than the
# busy handler's longest sleep, so a waiting intake or callback gets the lock
# (the same figures as the funnel roll-up's chunks, core/funnel/rollup.py).
HOLD_SECONDS = 0.2
TURN_SECONDS = 0.11
FIRST_CHUNK_STEPS = 2
# Steps staged per transaction (a step of 200 stores is about 20 KB).
STAGE_BATCH_STEPS = 10
# A run applying whose last chunk is older than this has lost its driver.
ABANDONED_AFTER = timedelta(seconds=60)
# The states in which a run blocks other writers.
ACTIVE = (ImportRunState.checking.value, ImportRunState.applying.value)
# The binding sheet's kind of run (core.bindings.imports.commit): the writers of
# bindings refuse or hold back while one is active.
BINDINGS = "bindings"
# The sidecar job that finishes runs whose driver died (core.import_runs.jobs).
RESUME_JOB = "import_runs.resume"
# Set in session.info while a run's own chunk writes, so its own guard lets it through.
_DRIVING = "import_run"


class ImportInProgress(DomainError):
    """Another import is being applied; nothing was written."""


@dataclass(frozen=True)
class Kind:
    """How a kind of import checks and applies its staged steps.

    `check` reads (no lock) whether what the run was worked out from still
    holds, raising a DomainError to refuse it; `apply` writes one step in the
    caller's transaction and returns figures to add to the run's summary."""
    check: Callable[[Session, list[Any]], None]
    apply: Callable[[Session, Actor, Any], dict[str, int]]


_KINDS: dict[str, Kind] = {}


# Where each kind registers itself: a process that finds a run of a kind it never
# imported (the stores page resuming a dead binding-sheet run) loads it first.
_KIND_MODULES = {"stores": "core.directory.stores", BINDINGS: "core.bindings.imports.run_commit"}


def register_kind(name: str, kind: Kind) -> None:
    _KINDS[name] = kind


def _kind(name: str) -> Kind:
    if name not in _KINDS:
        importlib.import_module(_KIND_MODULES[name])
    return _KINDS[name]


def chunked(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def active_run(session: Session, *, kind: str | None = None) -> ImportRun | None:
    query = select(ImportRun).where(col(ImportRun.state).in_(ACTIVE))
    if kind is not None:
        query = query.where(ImportRun.kind == kind)
    return session.exec(query.order_by(col(ImportRun.id))).first()


def refuse_while_applying(session: Session, *, own: int | None = None, kind: str | None = None,
                          key: str = "import_runs.in_progress") -> None:
    """Refuse (ImportInProgress, message `key`) while a run other than `own`
    (of `kind`, when named) is being checked or applied. Call it inside the
    write transaction, after its first write: on SQLite that write holds the
    lock, so no run can start between this check and the commit."""
    own = own if own is not None else session.info.get(_DRIVING)
    query = select(ImportRun).where(col(ImportRun.state).in_(ACTIVE), col(ImportRun.id) != (own or 0))
    if kind is not None:
        query = query.where(ImportRun.kind == kind)
    run = session.exec(query.order_by(col(ImportRun.id))).first()
    if run is not None:
        raise ImportInProgress(key, file=run.filename, user=run.actor_name, done=run.steps_done,
                               total=run.steps_total, since=format_display(run.started_at))


def refuse_binding_writes(session: Session) -> None:
    """An operator's write of bindings or standby lists, refused (导入进行中)
    while a binding sheet is being written in chunks: a later chunk must find
    every binding as the sheet's preview read it. Same place as refuse_while_applying."""
    refuse_while_applying(session, kind=BINDINGS, key="import_runs.bindings_busy")


def stage(*, session: Session, actor: Actor, kind: str, filename: str, steps: list[Any],
          summary: dict[str, Any]) -> int:
    """Write the run and its steps, a batch of steps per transaction (100,000
    stores are megabytes of steps), then make it the active run (checking) in
    a short transaction that refuses it while another run is active. Commits;
    nothing of the import is visible yet."""
    session.commit()
    refuse_while_applying(session)  # early, before megabytes are written for nothing
    now = utcnow()
    run = ImportRun(kind=kind, state=ImportRunState.staging.value, actor_user_id=actor.user_id,
                    actor_name=actor.name[:64], actor_role=actor.role.value, actor_branch_id=actor.branch_id,
                    filename=filename[:255], steps_total=len(steps), summary_json=json.dumps(summary),
                    started_at=now, heartbeat_at=now)
    session.add(run)
    session.commit()
    run_id = run.id
    assert run_id is not None  # assigned by the commit
    for first in range(0, len(steps), STAGE_BATCH_STEPS):
        insert_many(session.connection(), table_of(ImportRunStep), [
            {"run_id": run_id, "seq": seq, "payload": json.dumps(step, ensure_ascii=False)}
            for seq, step in enumerate(steps[first:first + STAGE_BATCH_STEPS], start=first)])
        session.exec(update(ImportRun).where(col(ImportRun.id) == run_id).values(heartbeat_at=utcnow()))
        session.commit()
        sleep(TURN_SECONDS)
        yield_to_urgent_writers(session.get_bind())
    # The first write takes the lock on SQLite: the check below sees every committed run.
    session.exec(update(ImportRun).where(col(ImportRun.id) == run_id)
                 .values(state=ImportRunState.checking.value, started_at=utcnow(), heartbeat_at=utcnow()))
    try:
        refuse_while_applying(session, own=run_id)
    except ImportInProgress:
        session.rollback()
        _drop(session, run_id)
        raise
    session.commit()
    return run_id


def _drop(session: Session, run_id: int) -> None:
    """Remove a run that never became active (nothing of it was visible)."""
    session.exec(delete(ImportRunStep).where(col(ImportRunStep.run_id) == run_id))
    session.exec(delete(ImportRun).where(col(ImportRun.id) == run_id))
    session.commit()


def actor_of(run: ImportRun) -> Actor:
    return Actor(name=run.actor_name, role=Role(run.actor_role), user_id=run.actor_user_id,
                 branch_id=run.actor_branch_id)


def _steps(session: Session, run_id: int, start: int, stop: int) -> list[Any]:
    return [json.loads(payload) for payload in session.exec(
        select(ImportRunStep.payload).where(ImportRunStep.run_id == run_id, col(ImportRunStep.seq) >= start,
                                            col(ImportRunStep.seq) < stop).order_by(col(ImportRunStep.seq))).all()]


def _finish(session: Session, run_id: int, state: ImportRunState) -> None:
    session.exec(delete(ImportRunStep).where(col(ImportRunStep.run_id) == run_id))
    session.exec(update(ImportRun).where(col(ImportRun.id) == run_id)
                 .values(state=state.value, finished_at=utcnow(), heartbeat_at=utcnow()))


def _check(session: Session, run: ImportRun) -> bool:
    """Compare what the run rests on with the database; refuse it (and raise) when it changed."""
    assert run.id is not None  # a loaded row has its key
    try:
        _kind(run.kind).check(session, _steps(session, run.id, 0, run.steps_total))
    except DomainError:
        session.rollback()
        _finish(session, run.id, ImportRunState.refused)
        session.commit()
        raise
    claimed = session.exec(update(ImportRun).where(col(ImportRun.id) == run.id,
                                                   col(ImportRun.state) == ImportRunState.checking.value)
                           .values(state=ImportRunState.applying.value, heartbeat_at=utcnow()))
    session.commit()
    return claimed.rowcount == 1


def drive(*, session: Session, run_id: int) -> bool:
    """Check a staged run and apply it, a chunk of steps per transaction.
    Returns whether this call finished it (False: someone else drives it).

    Each chunk first moves the run's progress on, compare-and-set on where it
    was (the first write: it takes the lock), so two drivers never apply the
    same steps; its steps, their figures and the progress commit together."""
    session.expire_all()
    run = session.get_one(ImportRun, run_id)
    if run.state == ImportRunState.checking.value and not _check(session, run):
        return False
    session.expire_all()
    run = session.get_one(ImportRun, run_id)
    if run.state != ImportRunState.applying.value:
        return run.state == ImportRunState.done.value
    kind, actor = _kind(run.kind), actor_of(run)
    done, size, figures = run.steps_done, FIRST_CHUNK_STEPS, json.loads(run.summary_json)
    while True:
        started = perf_counter()
        stop = min(done + size, run.steps_total)
        moved = session.exec(update(ImportRun).where(col(ImportRun.id) == run_id, col(ImportRun.steps_done) == done,
                                                     col(ImportRun.state) == ImportRunState.applying.value)
                             .values(steps_done=stop, heartbeat_at=utcnow()))
        if moved.rowcount != 1:
            session.rollback()
            return False
        session.info[_DRIVING] = run_id
        try:
            for step in _steps(session, run_id, done, stop):
                for name, value in kind.apply(session, actor, step).items():
                    figures[name] = figures.get(name, 0) + value
        finally:
            session.info.pop(_DRIVING, None)
        session.exec(update(ImportRun).where(col(ImportRun.id) == run_id).values(summary_json=json.dumps(figures)))
        if stop == run.steps_total:
            _finish(session, run_id, ImportRunState.done)
        session.commit()
        if stop == run.steps_total:
            return True
        held = max(perf_counter() - started, 0.001)
        # At most double at a time, so one quick chunk does not make a long one.
        size = max(1, min(int(size * HOLD_SECONDS / held), size * 2))
        done = stop
        # SQLite's write lock has no queue: writers waiting for it sleep in their
        # busy handlers; without a pause the next chunk would take it first, again and again,
        # and an urgent writer that slept through the pause goes first (db.write_turns).
        sleep(TURN_SECONDS)
        yield_to_urgent_writers(session.get_bind())


def apply_in_transaction(*, session: Session, actor: Actor, kind: str, steps: list[Any]) -> dict[str, int]:
    """Apply the steps in the caller's transaction (PostgreSQL, see above)."""
    figures: dict[str, int] = {}
    for step in steps:
        for name, value in _kind(kind).apply(session, actor, step).items():
            figures[name] = figures.get(name, 0) + value
    return figures


def resume_abandoned(*, session: Session) -> list[int]:
    """Finish every run whose driver died (no chunk for ABANDONED_AFTER), and
    drop those that died while being staged; the ids finished."""
    stale = utcnow() - ABANDONED_AFTER
    for run_id in session.exec(select(ImportRun.id).where(ImportRun.state == ImportRunState.staging.value,
                                                          col(ImportRun.heartbeat_at) < stale)).all():
        assert run_id is not None  # a stored row has its key
        _drop(session, run_id)
    finished: list[int] = []
    while True:
        run = active_run(session)
        if run is None or utcnow() - run.heartbeat_at < ABANDONED_AFTER:
            return finished
        assert run.id is not None  # a loaded row has its key
        log.warning("resuming import run %s (%s, %s) at step %s of %s", run.id, run.kind, run.filename,
                    run.steps_done, run.steps_total)
        try:
            if drive(session=session, run_id=run.id):
                finished.append(run.id)
        except DomainError:
            log.warning("import run %s refused: it changed since it was read", run.id)
        session.expire_all()


def summary(run: ImportRun) -> dict[str, Any]:
    return json.loads(run.summary_json)


@dataclass(frozen=True)
class RunStatus:
    """A run as the pages and the CLI show it (导入中 / 已完成 / 已拒绝)."""
    run_id: int
    kind: str
    state: str
    filename: str
    actor_name: str
    steps_done: int
    steps_total: int
    started_at: datetime
    finished_at: datetime | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def status_of(run: ImportRun) -> RunStatus:
    assert run.id is not None  # a loaded row has its key
    return RunStatus(run.id, run.kind, run.state, run.filename, run.actor_name, run.steps_done, run.steps_total,
                     run.started_at, run.finished_at)


def latest_run(*, session: Session, actor: Actor, kind: str | None = None) -> RunStatus | None:
    """The run being applied if any, else the latest one (of `kind` when named)."""
    require(actor, Capability.view_directory)
    run = active_run(session)
    if run is None:
        query = select(ImportRun).order_by(col(ImportRun.id).desc())
        if kind is not None:
            query = query.where(ImportRun.kind == kind)
        run = session.exec(query).first()
    return status_of(run) if run is not None else None

"""A binding sheet committed as an import run (SQLite), all or nothing for the user.

One transaction for 50,000 rows held SQLite's write lock for seconds, and event
intake and the WeCom callback waited behind it. So the commit is worked out
from the preview's snapshot (read again and compared, as the straight commit
does), staged as steps (core.import_runs.runs), checked once more after the run
became active, and applied a few steps per transaction. The steps write what
the straight commit (`commit._commit`) writes: the new accounts, every ending
binding, then every starting one, the standby lists; then the batch (import
history shows it from there on, a few chunks before the end), the sheet's rows,
and last its per-branch figures and audit entry.

While the run is active the writers of bindings hold back (review and standby
edits are refused, the capacity switch and the member-left handover wait), so
the versions staged here still hold when a later chunk applies them."""

import hashlib
import json
from collections import defaultdict
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from base.errors import ConcurrentEdit
from base.timeutil import utcnow
from core import audit, settings_store
from core.auth.permissions import Actor, Role
from core.bindings import service as bindings
from core.bindings.imports import standby_column
from core.bindings.imports.judge import _ACCOUNT, Preview, _load
from core.directory.members import hand_over_deferred
from core.import_runs import runs
from db.fastsql import insert_many, one_of
from db.models import AccountStatus, BindingEndReason, BindingImport, BindingImportRow, ImportRowOutcome, ImportRun
from db.models.imports import BindingImportBranch
from db.typed import table_of

# Rows per staged step: a step is applied whole, so it stays well under a chunk's 0.2 s on a busy machine.
STEP_ROWS = 250
STEP_SHEET_ROWS = 1000
_COUNT_FIELDS = {ImportRowOutcome.new.value: 1, ImportRowOutcome.changed.value: 2,
                 ImportRowOutcome.unchanged.value: 3}


class _Store(NamedTuple):
    """What standby_column.write reads of a store."""
    id: int
    crm_store_id: str
    branch_id: int


def _digest(basis: tuple) -> str:
    """The preview's basis without who judged it (the run's check has no page
    actor; the run's actor and branch are its own and do not change)."""
    return hashlib.sha256(repr(basis[1:]).encode()).hexdigest()


def run_commit(session: Session, actor: Actor, preview: Preview,
               branch_id: int | None) -> tuple[int | None, runs.RunStatus]:
    """Stage, check and apply the sheet as an import run; the batch id once
    done (None while another process finishes it) and the run."""
    session.commit()
    runs.resume_abandoned(session=session)
    # Refused early, with nothing staged, when another import is being applied.
    runs.refuse_while_applying(session)
    values = [r.values for r in preview.rows]
    snap = _load(session, actor, branch_id, values, lock=False)
    if snap.basis != preview.basis:
        raise ConcurrentEdit("binding_import.changed_since_preview")
    session.rollback()
    steps, figures = _steps(actor, preview, branch_id, snap)
    run_id = runs.stage(session=session, actor=actor, kind=runs.BINDINGS, filename=preview.parsed.filename,
                        steps=steps, summary=figures)
    engine = session.get_bind()
    if runs.drive(session=session, run_id=run_id) and isinstance(engine, Engine):
        # The member-left handovers held back while it applied, at once rather than at the sidecar's next minute.
        hand_over_deferred(engine=engine)
    session.expire_all()
    run = session.get_one(ImportRun, run_id)
    import_id = _import_id(session, steps[0][1]["ref"]) if run.state == "done" else None
    return import_id, runs.status_of(run)


def _steps(actor: Actor, preview: Preview, branch_id: int | None, snap: Any) -> tuple[list[list], dict]:
    parsed, rows, now = preview.parsed, preview.rows, utcnow()
    stores = snap.stores
    ref = [parsed.sha256, now.isoformat()]
    single_branch = preview.branch_ids[0] if len(preview.branch_ids) == 1 else None
    batch = {"branch_id": branch_id if branch_id is not None else single_branch, "uploaded_by_id": actor.user_id,
             "uploaded_by_name": actor.name[:64], "filename": parsed.filename[:255], "sha256": parsed.sha256,
             "total_rows": len(parsed.rows), "new_count": preview.new_count, "changed_count": preview.changed_count,
             "unchanged_count": preview.unchanged_count, "warning_count": preview.warning_count,
             "accounts_created": preview.accounts_to_create}
    head = {"ref": ref, "role": actor.role.value, "branch_id": branch_id, "basis": _digest(preview.basis)}
    steps: list[list] = [["head", head]]

    def parts(sort: str, items: list, size: int = STEP_ROWS, *extra: Any) -> None:
        steps.extend([sort, ref, part, *extra] for part in runs.chunked(items, size))

    # New accounts: the standby ones the lists name, then the rows' own (as the straight commit).
    to_create = {r.values["wecom_userid"].lower(): r for r in rows if r.creates_account}
    wanted: dict[str, list] = {}
    for r in rows:
        for userid in standby_column.named(r.values) or []:
            key = userid.lower()
            if key not in snap.accounts and key not in to_create:
                wanted.setdefault(key, [userid, userid, stores[r.values["crm_store_id"]].branch_id])
    parts("accounts", list(wanted.values()), STEP_ROWS, AccountStatus.standby.value)
    parts("accounts", [[r.values["wecom_userid"], r.values["wecom_name"],
                        stores[r.values["crm_store_id"]].branch_id] for r in to_create.values()],
          STEP_ROWS, AccountStatus.active.value)

    account_ids = {key: a.id for key, a in snap.accounts.items()}
    userids = {key: a.userid for key, a in snap.accounts.items()}
    userids |= {key: r.values["wecom_userid"] for key, r in to_create.items()}
    ends, starts = [], []
    for r in rows:
        store, key = stores[r.values["crm_store_id"]], r.values["wecom_userid"].lower()
        if r.status == ImportRowOutcome.unchanged or (key in account_ids
                                                      and store.bound_account_id == account_ids[key]):
            continue  # a row changing only the standby list keeps its binding
        if r.status == ImportRowOutcome.changed:
            ends.append(list(bindings.End(store.binding_id, store.binding_version, store.branch_id,
                                          store.crm_store_id, store.bound_userid, store.binding_shown)))
        starts.append([store.id, key, store.branch_id, store.crm_store_id, userids[key]])
    # Every end before any start: a row may take the account another row gives up.
    parts("ends", ends)
    parts("starts", starts)

    started = {account_ids[s[1]] for s in starts if s[1] in account_ids}
    promoted = sorted(u for u in snap.standby.reserved if account_ids.get(u) in started)
    changes = [[store.id, store.crm_store_id, store.branch_id, standby_column.named(r.values) or [],
                snap.standby.lists.get(store.id, [])]
               for r in rows
               if standby_column.changes_list(r.values, (store := stores[r.values["crm_store_id"]]).id, snap.standby)]
    if changes or promoted:
        standby_steps = [["standby", ref, part, []] for part in runs.chunked(changes, STEP_ROWS)] or [
            ["standby", ref, [], []]]
        standby_steps[0][3] = promoted  # taken off every list once, as the straight commit does
        steps.extend(standby_steps)

    per_branch: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    sheet_rows = []
    for r in rows:
        branch = stores[r.values["crm_store_id"]].branch_id
        counts = per_branch[branch]
        counts[0] += 1
        counts[_COUNT_FIELDS[r.status]] += 1
        counts[4] += bool(r.warnings)
        counts[5] += r.creates_account
        sheet_rows.append([{
            "row_number": r.row_number, "branch_id": branch, "crm_store_id": r.values["crm_store_id"],
            "store_name": r.values.get("store_name", "")[:200], "wecom_userid": r.values["wecom_userid"],
            "wecom_name": r.values["wecom_name"], "outcome": r.status, "previous_userid": r.previous_userid,
            "warnings_json": json.dumps([{"key": w.key, "params": w.params} for w in r.warnings],
                                        ensure_ascii=False) if r.warnings else None,
        }, r.values])
    steps.append(["batch", ref, batch])
    parts("rows", sheet_rows, STEP_SHEET_ROWS)
    steps.append(["finish", ref, [[branch, *counts] for branch, counts in per_branch.items()],
                  {"file": parsed.filename, "sha256": parsed.sha256, "rows": batch["total_rows"],
                   "new": batch["new_count"], "changed": batch["changed_count"],
                   "unchanged": batch["unchanged_count"], "warnings": batch["warning_count"],
                   "accounts_created": batch["accounts_created"]}])
    figures = {"rows": len(rows), "new": preview.new_count, "changed": preview.changed_count,
               "unchanged": preview.unchanged_count, "accounts_created": preview.accounts_to_create}
    return steps, figures


def _import_id(session: Session, ref: list[str]) -> int:
    """The run's batch id. The batch is written late (its `batch` step, just
    before the sheet's rows), so that import history shows it only at the end;
    until then its id is the next one, which nobody else takes: no other binding
    sheet is committed while the run is active."""
    import_id = session.exec(select(BindingImport.id).where(
        BindingImport.sha256 == ref[0], BindingImport.committed_at == datetime.fromisoformat(ref[1]))).first()
    if import_id is not None:
        return import_id
    return (session.exec(select(func.max(BindingImport.id))).one() or 0) + 1


def _check(session: Session, steps: list[list]) -> None:
    """Refuse the run when anything the preview's judgement rests on changed since."""
    head = steps[0][1]
    values = [row[1] for step in steps if step[0] == "rows" for row in step[2]]
    judge = Actor(name="import", role=Role(head["role"]))
    snap = _load(session, judge, head["branch_id"], values, lock=False)
    if _digest(snap.basis) != head["basis"]:
        raise ConcurrentEdit("binding_import.changed_since_preview")


def _account_ids(session: Session, keys: set[str]) -> dict[str, int]:
    """Account ids by lower-cased userid."""
    if not keys:
        return {}
    lower = func.lower(_ACCOUNT.c.userid)
    return {key: account_id for account_id, key in session.execute(
        select(_ACCOUNT.c.id, lower).where(one_of(session.connection(), lower, sorted(keys)))).all()}


def _apply(session: Session, actor: Actor, step: list) -> dict[str, int]:
    """One staged step in the caller's transaction."""
    if step[0] == "head":
        return {}  # what the check compares
    sort, ref = step[0], step[1]
    import_id, now = _import_id(session, ref), datetime.fromisoformat(ref[1])
    connection = session.connection()
    if sort == "batch":
        session.add(BindingImport(id=import_id, **step[2], committed_at=now))
        session.flush()
    elif sort == "accounts":
        _, _, part, status = step
        limit = settings_store.effective(session=session, key="capacity.default_limit")
        insert_many(connection, _ACCOUNT, [
            {"userid": userid, "name": name, "capacity_limit": limit, "status": status, "customer_count": 0,
             "version": 1, "created_at": now, "updated_at": now} for userid, name, _branch in part])
        audit.record_many(session=session, actor=actor, at=now, entries=[
            audit.Entry("account.create", "account", userid, branch, None,
                        {"userid": userid, "name": name, "capacity_limit": limit, "status": status,
                         "import": import_id})
            for userid, name, branch in part])
    elif sort == "ends":
        bindings.end_many(session=session, actor=actor, ends=[bindings.End(*end) for end in step[2]],
                          reason=BindingEndReason.replaced, at=now, import_id=import_id)
    elif sort == "starts":
        ids = _account_ids(session, {start[1] for start in step[2]})
        bindings.start_many(session=session, actor=actor, at=now, import_id=import_id, starts=[
            bindings.Start(store_id, ids[key], branch, crm, userid) for store_id, key, branch, crm, userid in step[2]])
    elif sort == "standby":
        _, _, part, promoted = step
        named = {u.lower() for change in part for u in change[3]} | {u for change in part for u in change[4]}
        ids = _account_ids(session, named | set(promoted))
        changes: list[Any] = [(_Store(store_id, crm, branch), listed) for store_id, crm, branch, listed, _old in part]
        standby_column.write(
            session, actor, changes,
            standby_column.StandbyState({change[0]: change[4] for change in part},
                                        {u: (0, "") for u in promoted}),
            {ids[u] for u in promoted if u in ids}, ids, now, import_id)
    elif sort == "rows":
        insert_many(connection, table_of(BindingImportRow), [{"import_id": import_id, **row}
                                                             for row, _values in step[2]])
    else:
        _, _, per_branch, after = step
        insert_many(connection, table_of(BindingImportBranch), [
            {"import_id": import_id, "branch_id": branch, "total_rows": f[0], "new_count": f[1],
             "changed_count": f[2], "unchanged_count": f[3], "warning_count": f[4], "accounts_created": f[5]}
            for branch, *f in per_branch])
        batch = session.get_one(BindingImport, import_id)
        audit.record(session=session, actor=actor, action="bindings.import", entity_type="import",
                     entity_id=import_id, branch_id=batch.branch_id, after=after)
    return {}


runs.register_kind(runs.BINDINGS, runs.Kind(check=_check, apply=_apply))

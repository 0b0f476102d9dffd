"""Committing a previewed binding sheet, all or nothing (PostgreSQL: one
transaction, `_commit`; SQLite: an import run, core.bindings.imports.run_commit)."""

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from base.errors import ConcurrentEdit, DomainError, InvalidInput, NotFound, PermissionDenied
from base.timeutil import format_display, utcnow
from core import audit, settings_store
from core.auth.permissions import Actor
from core.bindings import service as bindings
from core.bindings.imports import standby_column
from core.bindings.imports.history import _find_import
from core.bindings.imports.judge import _ACCOUNT, Preview, PreviewRow, _load, _Snapshot, upload_branch
from core.bindings.imports.read import _gc_paused
from core.bindings.imports.run_commit import run_commit
from core.import_runs import runs
from db.fastsql import insert_many
from db.models import AccountStatus, BindingEndReason, BindingImport, BindingImportRow, ImportRowOutcome
from db.models.imports import BindingImportBranch
from db.typed import table_of


class AlreadyImported(DomainError):
    """The same file was committed before and would change nothing; nothing is written."""


@dataclass(frozen=True)
class CommitResult:
    import_id: int | None  # None: the run is being finished by another process
    new_count: int
    changed_count: int
    unchanged_count: int
    accounts_created: int
    run: runs.RunStatus | None = None  # the import run that wrote it (SQLite)



def commit(*, session: Session, actor: Actor, preview: Preview, confirm_warnings: bool = False,
           confirm_unchecked: bool = False) -> CommitResult:
    """Write a previewed sheet, all or nothing: on PostgreSQL in the caller's
    transaction; on SQLite as an import run (core.bindings.imports.run_commit),
    so call it there with nothing uncommitted in `session`.

    Refuses (and writes nothing) when any row is wrong, when warnings were not
    confirmed, when WeCom could not check the accounts and the operator did not
    say to go on, when the same file was committed before and would change
    nothing, or when anything the preview's judgement rests on changed since
    (read again here, under lock).
    """
    branch_id = upload_branch(actor=actor, branch_id=preview.branch_id)
    if not preview.ok:
        raise InvalidInput("binding_import.has_errors", count=preview.error_count)
    if preview.warning_count and not confirm_warnings:
        raise InvalidInput("binding_import.confirm_warnings", count=preview.warning_count)
    if preview.members_unchecked and not confirm_unchecked:
        raise InvalidInput("binding_import.confirm_unchecked")
    parsed = preview.parsed
    if not preview.changes_something:
        earlier = _find_import(session, parsed.sha256)
        if earlier is not None:
            raise AlreadyImported("binding_import.already_imported", at=format_display(earlier.committed_at),
                                  user=earlier.uploaded_by_name, id=earlier.id)
    with _gc_paused:
        if not runs.is_sqlite(session):
            return _commit(session, actor, preview, branch_id)
        import_id, run = run_commit(session, actor, preview, branch_id)
    return CommitResult(import_id, preview.new_count, preview.changed_count, preview.unchanged_count,
                        preview.accounts_to_create, run)


def _commit(session: Session, actor: Actor, preview: Preview, branch_id: int | None) -> CommitResult:
    parsed, now = preview.parsed, utcnow()
    single_branch = preview.branch_ids[0] if len(preview.branch_ids) == 1 else None
    batch = BindingImport(branch_id=branch_id if branch_id is not None else single_branch,
                          uploaded_by_id=actor.user_id, uploaded_by_name=actor.name[:64],
                          filename=parsed.filename[:255], sha256=parsed.sha256, total_rows=len(parsed.rows),
                          new_count=preview.new_count, changed_count=preview.changed_count,
                          unchanged_count=preview.unchanged_count, warning_count=preview.warning_count,
                          accounts_created=preview.accounts_to_create, committed_at=now)
    # The batch row goes in first: on SQLite that takes the write lock before
    # anything is read.
    session.add(batch)
    session.flush()
    assert batch.id is not None  # assigned by the flush
    # Under that lock: a store import being applied (an import run) refuses this one.
    runs.refuse_while_applying(session)
    snap = _load(session, actor, branch_id, [r.values for r in preview.rows], lock=True)
    if snap.basis != preview.basis:
        raise ConcurrentEdit("binding_import.changed_since_preview")
    try:
        _write(session, actor, preview.rows, snap, batch.id, now)
    except (IntegrityError, ConcurrentEdit):
        # A binding started (the partial unique indexes) or changed elsewhere after the state was read.
        raise ConcurrentEdit("binding_import.changed_since_preview") from None
    audit.record(session=session, actor=actor, action="bindings.import", entity_type="import", entity_id=batch.id,
                 branch_id=batch.branch_id,
                 after={"file": parsed.filename, "sha256": parsed.sha256, "rows": batch.total_rows,
                        "new": batch.new_count, "changed": batch.changed_count,
                        "unchanged": batch.unchanged_count, "warnings": batch.warning_count,
                        "accounts_created": batch.accounts_created})
    session.flush()
    return CommitResult(batch.id, batch.new_count, batch.changed_count, batch.unchanged_count,
                        batch.accounts_created)


_COUNT_FIELDS = {ImportRowOutcome.new.value: 1, ImportRowOutcome.changed.value: 2,
                 ImportRowOutcome.unchanged.value: 3}


def _write(session: Session, actor: Actor, rows: list[PreviewRow], snap: _Snapshot, import_id: int,
           now: datetime) -> None:
    """Bulk statements on the tables (no ORM unit of work): 50,000 rows in seconds."""
    connection = session.connection()
    stores = snap.stores
    account_ids = {key: a.id for key, a in snap.accounts.items()}
    userids = {key: a.userid for key, a in snap.accounts.items()}

    to_create = {r.values["wecom_userid"].lower(): r for r in rows if r.creates_account}
    _create_standby_accounts(session, actor, rows, snap, set(to_create), account_ids, userids, now, import_id)
    if to_create:
        limit = settings_store.effective(session=session, key="capacity.default_limit")
        before = session.execute(select(func.max(_ACCOUNT.c.id))).scalar() or 0
        insert_many(connection, _ACCOUNT, [
            {"userid": r.values["wecom_userid"], "name": r.values["wecom_name"], "capacity_limit": limit,
             "status": AccountStatus.active.value, "customer_count": 0, "version": 1, "created_at": now,
             "updated_at": now} for r in to_create.values()])
        # Read the new ids back (RETURNING with executemany runs row by row on SQLite).
        for account_id, userid in session.execute(select(_ACCOUNT.c.id, _ACCOUNT.c.userid)
                                                  .where(_ACCOUNT.c.id > before)).all():
            if userid.lower() in to_create:
                account_ids[userid.lower()] = account_id
                userids[userid.lower()] = userid
        audit.record_many(session=session, actor=actor, at=now, entries=[
            audit.Entry("account.create", "account", r.values["wecom_userid"],
                        stores[r.values["crm_store_id"]].branch_id, None,
                        {"userid": r.values["wecom_userid"], "name": r.values["wecom_name"], "capacity_limit": limit,
                         "status": AccountStatus.active.value, "import": import_id})
            for r in to_create.values()])

    # A changed row (换号) ends the current binding at the version the judgement read; it and a new row start one.
    ends, starts = [], []
    for r in rows:
        store, key = stores[r.values["crm_store_id"]], r.values["wecom_userid"].lower()
        if r.status == ImportRowOutcome.unchanged or store.bound_account_id == account_ids[key]:
            continue  # a row changing only the standby list keeps its binding
        if r.status == ImportRowOutcome.changed:
            ends.append(bindings.End(store.binding_id, store.binding_version, store.branch_id, store.crm_store_id,
                                     store.bound_userid, store.binding_shown))
        starts.append(bindings.Start(store.id, account_ids[key], store.branch_id, store.crm_store_id, userids[key]))
    bindings.end_many(session=session, actor=actor, ends=ends, reason=BindingEndReason.replaced, at=now,
                      import_id=import_id)
    bindings.start_many(session=session, actor=actor, starts=starts, at=now, import_id=import_id)
    standby_column.write(session, actor, [
        (stores[r.values["crm_store_id"]], standby_column.named(r.values) or []) for r in rows
        if standby_column.changes_list(r.values, stores[r.values["crm_store_id"]].id, snap.standby)],
        snap.standby, {s.account_id for s in starts}, account_ids, now, import_id)

    per_branch: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for r in rows:
        figures = per_branch[stores[r.values["crm_store_id"]].branch_id]
        figures[0] += 1
        figures[_COUNT_FIELDS[r.status]] += 1
        figures[4] += bool(r.warnings)
        figures[5] += r.creates_account
    insert_many(connection, table_of(BindingImportBranch), [
        {"import_id": import_id, "branch_id": branch, "total_rows": f[0], "new_count": f[1], "changed_count": f[2],
         "unchanged_count": f[3], "warning_count": f[4], "accounts_created": f[5]}
        for branch, f in per_branch.items()])
    insert_many(connection, table_of(BindingImportRow), [{
        "import_id": import_id, "row_number": r.row_number, "branch_id": stores[r.values["crm_store_id"]].branch_id,
        "crm_store_id": r.values["crm_store_id"], "store_name": r.values.get("store_name", "")[:200],
        "wecom_userid": r.values["wecom_userid"], "wecom_name": r.values["wecom_name"], "outcome": r.status,
        "previous_userid": r.previous_userid,
        "warnings_json": json.dumps([{"key": w.key, "params": w.params} for w in r.warnings], ensure_ascii=False)
        if r.warnings else None,
    } for r in rows])


def _create_standby_accounts(session: Session, actor: Actor, rows: list[PreviewRow], snap: _Snapshot,
                             main_ones: set[str], account_ids: dict[str, int], userids: dict[str, str],
                             now: datetime, import_id: int) -> None:
    """Standby userids no account has yet: new accounts, `standby`, reserved by the list write."""
    wanted: dict[str, tuple[str, int]] = {}
    for r in rows:
        for userid in standby_column.named(r.values) or []:
            key = userid.lower()
            if key not in snap.accounts and key not in main_ones:
                wanted.setdefault(key, (userid, stores_branch(snap, r)))
    if not wanted:
        return
    limit = settings_store.effective(session=session, key="capacity.default_limit")
    before = session.execute(select(func.max(_ACCOUNT.c.id))).scalar() or 0
    insert_many(session.connection(), _ACCOUNT, [
        {"userid": userid, "name": userid, "capacity_limit": limit, "status": AccountStatus.standby.value,
         "customer_count": 0, "version": 1, "created_at": now, "updated_at": now}
        for userid, _branch in wanted.values()])
    for account_id, userid in session.execute(select(_ACCOUNT.c.id, _ACCOUNT.c.userid)
                                              .where(_ACCOUNT.c.id > before)).all():
        account_ids[userid.lower()] = account_id
        userids[userid.lower()] = userid
    audit.record_many(session=session, actor=actor, at=now, entries=[
        audit.Entry("account.create", "account", userid, branch, None,
                    {"userid": userid, "name": userid, "capacity_limit": limit,
                     "status": AccountStatus.standby.value, "import": import_id})
        for userid, branch in wanted.values()])


def stores_branch(snap: _Snapshot, row: PreviewRow) -> int:
    return snap.stores[row.values["crm_store_id"]].branch_id


def actor_for_username(*, session: Session, username: str) -> Actor:
    """The command line acts as a named console user, with that user's rights."""
    from core.auth.sessions import actor_for, find_user, user_can_log_in

    user = find_user(session=session, username=username)
    if user is None:
        raise NotFound("binding_import.unknown_user", username=username)
    if not user_can_log_in(user, utcnow()):
        raise PermissionDenied("binding_import.user_inactive", username=username)
    return actor_for(user)

"""Branches (分公司) and stores (门店): the HQ store list from CRM, search and paging."""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit, PermissionDenied
from base.timeutil import utcnow
from core import audit
from core.auth.permissions import Actor, Capability, require
from core.bindings import entries
from core.bindings import service as bindings
from core.import_runs import runs
from core.sheets import SheetColumn, SheetRow, read_sheet
from db.fastsql import insert_many, one_of
from db.models import Account, Binding, BindingEndReason, Branch, BranchBindingStats, ImportRun, Store, StoreStatus
from db.typed import select_columns, table_of

STORE_COLUMNS = [
    SheetColumn("branch_code", ("分公司编码", "branch_code"), is_id=True),
    SheetColumn("branch_name", ("分公司名称", "branch_name")),
    SheetColumn("crm_store_id", ("CRM门店ID", "crm_store_id"), is_id=True),
    SheetColumn("store_name", ("门店名称", "store_name")),
    SheetColumn("status", ("状态", "status")),
]

STATUS_WORDS = {"营业": StoreStatus.open, "open": StoreStatus.open,
                "关闭": StoreStatus.closed, "closed": StoreStatus.closed}


def visible_branches(*, session: Session, actor: Actor) -> list[Branch]:
    require(actor, Capability.view_directory)
    query = select(Branch).order_by(Branch.code)
    if actor.branch_scope is not None:
        query = query.where(Branch.id == actor.branch_scope)
    return list(session.exec(query).all())


@dataclass(frozen=True)
class StoreFilter:
    branch_id: int | None = None
    status: str | None = None
    bound: bool | None = None
    search: str = ""


@dataclass(frozen=True)
class StoreListRow:
    store_id: int
    crm_store_id: str
    name: str
    branch_code: str
    branch_name: str
    status: str
    wecom_userid: str | None
    wecom_name: str | None
    entry_reason: str | None    # None: the client shows the entry (the rule in core.bindings.entries)


def search_stores(*, session: Session, actor: Actor, filters: StoreFilter, offset: int = 0,
                  limit: int = 50) -> tuple[list[StoreListRow], int]:
    """One page of stores with their current binding, and the total count.

    Every filter is a condition on `store` itself (binding and account filters
    are indexed subqueries), so the count needs no join and the page walks the
    CRM-ID index; the page's bindings are then read for its rows only."""
    require(actor, Capability.view_directory)
    conditions: list[ColumnElement[bool]] = []
    scope = actor.branch_scope
    if scope is not None:
        if filters.branch_id is not None and filters.branch_id != scope:
            raise PermissionDenied("error.branch_out_of_scope")
        conditions.append(col(Store.branch_id) == scope)
    elif filters.branch_id is not None:
        conditions.append(col(Store.branch_id) == filters.branch_id)
    if filters.status:
        conditions.append(col(Store.status) == filters.status)
    current_store_ids = select(Binding.store_id).where(col(Binding.ended_at).is_(None))
    term = filters.search.strip()
    if term:
        by_userid = current_store_ids.join(Account, col(Account.id) == Binding.account_id) \
            .where(func.lower(Account.userid) == term.lower())
        conditions.append(or_(col(Store.crm_store_id).startswith(term, autoescape=True),
                              col(Store.name).contains(term, autoescape=True),
                              col(Store.id).in_(by_userid)))
    if filters.bound is True:
        conditions.append(col(Store.id).in_(current_store_ids))
    elif filters.bound is False:
        conditions.append(col(Store.id).not_in(current_store_ids))
    total = session.exec(select(func.count(col(Store.id))).where(*conditions)).one()
    if limit <= 0:
        return [], total
    page = session.exec(select(Store).where(*conditions).order_by(Store.crm_store_id)
                        .offset(offset).limit(limit)).all()
    store_ids = [store.id for store in page]
    branches = {b.id: b for b in session.exec(select(Branch).where(
        col(Branch.id).in_({store.branch_id for store in page}))).all()}
    # The entry column says what the client API answers, not the operator's flag.
    entry = {store_id: (userid, name, reason) for store_id, userid, name, reason in session.exec(
        select(Store.id, Account.userid, Account.name, entries.reason_expr(standby_apart=True))
        .join(Binding, entries.current_binding_join(), isouter=True)
        .join(Account, col(Account.id) == Binding.account_id, isouter=True)
        .where(col(Store.id).in_(store_ids))).all()}
    rows = []
    for store in page:
        assert store.id is not None  # a loaded row has its key
        userid, name, reason = entry[store.id]
        branch = branches[store.branch_id]
        rows.append(StoreListRow(store.id, store.crm_store_id, store.name, branch.code, branch.name, store.status,
                                 userid, name, reason))
    return rows, total


@dataclass(frozen=True)
class BranchSummary:
    branch_id: int
    code: str
    name: str
    stores: int
    open_stores: int
    bound_open_stores: int

    @property
    def binding_rate(self) -> float | None:
        return self.bound_open_stores / self.open_stores if self.open_stores else None


def branch_summaries(*, session: Session, actor: Actor) -> list[BranchSummary]:
    """Per branch: stores, open stores, and open stores with a current binding,
    read from the counters the database keeps (migration 0006)."""
    require(actor, Capability.view_directory)
    query = (
        select_columns(Branch.id, Branch.code, Branch.name, BranchBindingStats.stores,
                       BranchBindingStats.open_stores, BranchBindingStats.bound_open_stores)
        .join(BranchBindingStats, col(BranchBindingStats.branch_id) == Branch.id)
        .order_by(Branch.code)
    )
    if actor.branch_scope is not None:
        query = query.where(Branch.id == actor.branch_scope)
    return [BranchSummary(*row) for row in session.exec(query).all()]


@dataclass
class StoreImportResult:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    branches_created: int = 0
    closed_bindings: int = 0
    errors: list[tuple[int, str, dict]] = field(default_factory=list)  # (row number, message key, params)
    run: runs.RunStatus | None = None  # the import run that wrote it (SQLite)
    resumed: list[int] = field(default_factory=list)  # interrupted runs finished before this one

    @property
    def ok(self) -> bool:
        return not self.errors


# The longest text each column's database field holds.
STORE_COLUMN_LIMITS = {"branch_code": 32, "branch_name": 100, "crm_store_id": 64, "store_name": 200}
_STORE_LABELS = {column.key: column.label for column in STORE_COLUMNS}


def _check_store_row(row: SheetRow, seen: dict[str, int]) -> list[tuple[str, dict]]:
    problems: list[tuple[str, dict]] = []
    v = row.values
    for note in row.notes:
        if note.kind == "formula":
            problems.append(("sheet.row.formula", {"column": _STORE_LABELS[note.field]}))
        elif note.kind == "numeric_id":
            problems.append(("sheet.row.numeric_id", {"column": _STORE_LABELS[note.field], "value": note.original}))
    for key in ("branch_code", "branch_name", "crm_store_id", "store_name", "status"):
        if not v.get(key) and not any(n.field == key and n.kind == "formula" for n in row.notes):
            problems.append(("sheet.row.required", {"column": _STORE_LABELS[key]}))
    if v.get("status") and v["status"].lower() not in STATUS_WORDS:
        problems.append(("stores.row.bad_status", {"value": v["status"]}))
    for key, limit in STORE_COLUMN_LIMITS.items():
        if len(v.get(key, "")) > limit:
            problems.append(("stores.row.too_long", {"column": _STORE_LABELS[key], "limit": limit}))
    store_id = v.get("crm_store_id")
    if store_id:
        if store_id in seen:
            problems.append(("sheet.row.duplicate_store", {"other_row": seen[store_id]}))
        else:
            seen[store_id] = row.row_number
    return problems


def _ends_of_closing(session: Session, store_ids: list[int]) -> list[bindings.End]:
    """The current bindings of the stores that close."""
    if not store_ids:
        return []
    connection = session.connection()
    return [bindings.End(*row) for row in session.exec(
        select_columns(Binding.id, Binding.version, Store.branch_id, Store.crm_store_id, Account.userid,
                       Binding.shown, col(Binding.reviewed_at).is_not(None))
        .join(Store, entries.current_binding_join())
        .join(Account, col(Account.id) == Binding.account_id)
        .where(one_of(connection, col(Store.id), store_ids))
        .order_by(col(Binding.id))).all()]


_STORE = table_of(Store)
_KIND = "stores"
# Stores per staged step: a step is applied whole, so it stays well under a chunk's 0.2 s on a busy machine.
STEP_STORES = 200


def import_stores(*, session: Session, actor: Actor, data: bytes, filename: str,
                  dry_run: bool = False) -> StoreImportResult:
    """Upsert the CRM store list. All or nothing: with any bad row nothing is
    written and every bad row is named; a store changed or added by someone
    else while the file was being read refuses the whole import
    (ConcurrentEdit). A store that closes ends its current binding (reason
    store_closed) so its entry hides itself.

    On SQLite the import is an import run (core.import_runs.runs): staged,
    checked, then applied in chunks that each commit, so call this with nothing
    uncommitted in `session`; a run left half-applied by a dead process is
    finished first. On PostgreSQL it is written in the caller's transaction."""
    require(actor, Capability.manage_stores)
    sheet = read_sheet(data, filename, STORE_COLUMNS)
    result = StoreImportResult(rows=len(sheet.rows))
    seen: dict[str, int] = {}
    for row in sheet.rows:
        for key, params in _check_store_row(row, seen):
            result.errors.append((row.row_number, key, params))
    branch_names: dict[str, tuple[str, int]] = {}
    for row in sheet.rows:
        code, name = row.values.get("branch_code"), row.values.get("branch_name")
        if code and name:
            if code in branch_names and branch_names[code][0] != name:
                result.errors.append((row.row_number, "stores.row.branch_name_conflict",
                                      {"branch": code, "other_row": branch_names[code][1]}))
            branch_names.setdefault(code, (name, row.row_number))
    if result.errors:
        return result
    sqlite = runs.is_sqlite(session)
    if sqlite and not dry_run:
        result.resumed = runs.resume_abandoned(session=session)

    # Everything the import can work out is worked out from reads first.
    connection = session.connection()
    branches = {code: (branch_id, name) for branch_id, code, name in
                session.exec(select_columns(Branch.id, Branch.code, Branch.name)).all()}
    existing = {crm: (store_id, name, branch_id, status, version) for store_id, crm, name, branch_id, status, version
                in session.exec(select_columns(Store.id, Store.crm_store_id, Store.name, Store.branch_id,
                                               Store.status, Store.version)
                                .where(one_of(connection, col(Store.crm_store_id),
                                              [row.values["crm_store_id"] for row in sheet.rows]))).all()}
    new_branches = [[code, name] for code, (name, _) in branch_names.items() if code not in branches]
    renamed = [[branches[code][0], code, branches[code][1], name] for code, (name, _) in branch_names.items()
               if code in branches and branches[code][1] != name]
    created: list[list] = []  # crm_store_id, name, branch code, status
    changed: list[list] = []  # store id, version, crm_store_id, name, branch code, status, [name, branch, status]
    closing_store_ids: list[int] = []
    for row in sheet.rows:
        v = row.values
        status = STATUS_WORDS[v["status"].lower()].value
        found = existing.get(v["crm_store_id"])
        if found is None:
            created.append([v["crm_store_id"], v["store_name"], v["branch_code"], status])
            continue
        store_id, name, branch_id, old_status, version = found
        branch = branches.get(v["branch_code"])
        if branch is not None and (name, branch_id, old_status) == (v["store_name"], branch[0], status):
            result.unchanged += 1
            continue
        if old_status == StoreStatus.open and status == StoreStatus.closed:
            closing_store_ids.append(store_id)
        changed.append([store_id, version, v["crm_store_id"], v["store_name"], v["branch_code"], status,
                        [name, branch_id, old_status]])
    result.branches_created, result.created, result.updated = len(new_branches), len(created), len(changed)
    if dry_run:
        result.closed_bindings = len(_ends_of_closing(session, closing_store_ids))
        session.rollback()
        return result

    figures = {"rows": result.rows, "created": result.created, "updated": result.updated,
               "unchanged": result.unchanged, "branches_created": result.branches_created}
    steps: list[list] = [["branches", new_branches, renamed]]
    steps += [["create", part] for part in runs.chunked(created, STEP_STORES)]
    steps += [["change", part] for part in runs.chunked(changed, STEP_STORES)]
    steps.append(["finish", filename[:64], figures])
    if not sqlite:
        done = runs.apply_in_transaction(session=session, actor=actor, kind=_KIND, steps=steps)
        result.closed_bindings = done.get("closed_bindings", 0)
        return result
    run_id = runs.stage(session=session, actor=actor, kind=_KIND, filename=filename, steps=steps, summary=figures)
    runs.drive(session=session, run_id=run_id)
    run = session.get_one(ImportRun, run_id)
    session.refresh(run)
    result.closed_bindings, result.run = runs.summary(run).get("closed_bindings", 0), runs.status_of(run)
    return result


def _check_staged(session: Session, steps: list[list]) -> None:
    """Refuse the run when a store changed since it was read, or a store or branch it adds exists by now."""
    connection = session.connection()
    new_codes = [code for step in steps if step[0] == "branches" for code, _name in step[1]]
    new_stores = [store[0] for step in steps if step[0] == "create" for store in step[1]]
    versions = {store[0]: store[1] for step in steps if step[0] == "change" for store in step[1]}
    if new_codes and session.exec(select(func.count(col(Branch.id)))
                                  .where(one_of(connection, col(Branch.code), new_codes))).one():
        raise ConcurrentEdit("stores.changed_during_import")
    if new_stores and session.exec(select(func.count(col(Store.id)))
                                   .where(one_of(connection, col(Store.crm_store_id), new_stores))).one():
        raise ConcurrentEdit("stores.changed_during_import")
    found = dict(session.exec(select_columns(Store.id, Store.version)
                              .where(one_of(connection, col(Store.id), list(versions)))).all())
    if found != versions:
        raise ConcurrentEdit("stores.changed_during_import")


def _branch_ids(session: Session, codes: set[str]) -> dict[str, int]:
    return dict(session.exec(select_columns(Branch.code, Branch.id)
                             .where(one_of(session.connection(), col(Branch.code), sorted(codes)))).all())


def _apply_step(session: Session, actor: Actor, step: list) -> dict[str, int]:
    """One staged step in the caller's transaction: bulk statements only."""
    connection, now = session.connection(), utcnow()
    if step[0] == "branches":
        _, new_branches, renamed = step
        insert_many(connection, table_of(Branch), [{"code": code, "name": name, "created_at": now}
                                                   for code, name in new_branches])
        for branch_id, code, old_name, name in renamed:
            session.exec(update(Branch).where(col(Branch.id) == branch_id).values(name=name))
            audit.record(session=session, actor=actor, action="branch.rename", entity_type="branch",
                         entity_id=code, branch_id=branch_id, before={"name": old_name}, after={"name": name})
        return {}
    if step[0] == "create":
        branch_ids = _branch_ids(session, {code for _crm, _name, code, _status in step[1]})
        try:
            insert_many(connection, _STORE, [
                {"crm_store_id": crm, "name": name, "branch_id": branch_ids[code], "status": status, "version": 1,
                 "created_at": now, "updated_at": now} for crm, name, code, status in step[1]])
        except IntegrityError:  # another import added one of these stores meanwhile
            raise ConcurrentEdit("stores.changed_during_import") from None
        return {}
    if step[0] == "change":
        return {"closed_bindings": _apply_changes(session, actor, step[1], now)}
    _, name, figures = step
    audit.record(session=session, actor=actor, action="stores.import", entity_type="import", entity_id=name,
                 after=figures)
    return {}


def _apply_changes(session: Session, actor: Actor, changed: list[list], now: datetime) -> int:
    """Compare-and-set updates of the changed stores, their audit entries, and
    the end of the current bindings of the stores that close; the bindings ended."""
    connection = session.connection()
    branch_ids = _branch_ids(session, {store[4] for store in changed})
    done = connection.execute(
        _STORE.update().where(_STORE.c.id == bindparam("s_id"), _STORE.c.version == bindparam("s_version"))
        .values(name=bindparam("s_name"), branch_id=bindparam("s_branch"), status=bindparam("s_status"),
                version=bindparam("s_next"), updated_at=now),
        [{"s_id": store_id, "s_version": version, "s_next": version + 1, "s_name": name,
          "s_branch": branch_ids[code], "s_status": status}
         for store_id, version, _crm, name, code, status, _before in changed])
    if done.rowcount != len(changed):
        raise ConcurrentEdit("stores.changed_during_import")
    audit.record_many(session=session, actor=actor, at=now, entries=[
        audit.Entry("store.update", "store", crm, branch_ids[code],
                    {"name": before[0], "branch_id": before[1], "status": before[2]},
                    {"name": name, "branch_id": branch_ids[code], "status": status})
        for _store_id, _version, crm, name, code, status, before in changed])
    # Read under the write lock: no binding can start or change between this read and the end.
    ends = _ends_of_closing(session, [store_id for store_id, _version, _crm, _name, _code, status, before in changed
                                      if before[2] == StoreStatus.open and status == StoreStatus.closed])
    bindings.end_many(session=session, actor=actor, ends=ends, reason=BindingEndReason.store_closed, at=now)
    return len(ends)


runs.register_kind(_KIND, runs.Kind(check=_check_staged, apply=_apply_step))

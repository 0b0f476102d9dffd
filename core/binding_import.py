"""Binding sheets (绑定表): a branch's CRM-store-ID ↔ WeCom-account pairs, uploaded
as a sheet, checked row by row, previewed, then committed all or nothing.

One code path for the upload page and `python -m console import-bindings`:
`parse_sheet` reads the file (no database), `preview` judges every row against
the database and fingerprints what it saw, `commit` judges again inside its own
transaction and refuses when the fingerprint moved (someone changed an affected
store, binding or account since the preview). The commit writes in bulk so that
a 50,000-row sheet stays within the benchmark budget.
"""

import hashlib
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Row, bindparam, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import audit, settings_store
from core.accounts import is_valid_userid
from core.errors import ConcurrentEdit, DomainError, InvalidInput, NotFound, PermissionDenied
from core.permissions import Actor, Capability, require
from core.sheets import SheetColumn, SheetRow, read_sheet
from core.timeutil import utcnow
from db.bulk import insert_many
from db.models import (Account, AccountStatus, Binding, BindingEndReason, BindingImport, BindingImportRow, Branch,
                       ImportRowOutcome, Store, StoreStatus)

BINDING_COLUMNS = [
    SheetColumn("branch_code", ("分公司编码", "branch_code"), is_id=True),
    SheetColumn("crm_store_id", ("CRM门店ID", "crm_store_id"), is_id=True),
    SheetColumn("store_name", ("门店名称", "store_name"), required=False),
    SheetColumn("wecom_userid", ("企微账号", "wecom_userid"), is_id=True),
    SheetColumn("wecom_name", ("企微账号名称", "wecom_name")),
]
LABELS = {c.key: c.label for c in BINDING_COLUMNS}
REQUIRED_VALUES = ("branch_code", "crm_store_id", "wecom_userid", "wecom_name")
ERROR = "error"  # a row status beside the ImportRowOutcome values
_CHUNK = 5000  # bound parameters per IN list: SQLite ≥ 3.32 allows 32,766, PostgreSQL 65,535


class AlreadyImported(DomainError):
    """The same file was committed before; nothing is written again."""


@dataclass(frozen=True)
class RowIssue:
    key: str
    params: dict


@dataclass(frozen=True)
class ParsedSheet:
    filename: str
    sha256: str
    rows: list[SheetRow]
    headers: list[str]
    file_kind: str
    encoding: str | None


@dataclass
class PreviewRow:
    row_number: int
    values: dict[str, str]
    raw: dict[str, str]
    status: str = ImportRowOutcome.new.value  # new | changed | unchanged | error
    errors: list[RowIssue] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)
    previous_userid: str | None = None
    creates_account: bool = False


@dataclass(frozen=True)
class ImportSummary:
    import_id: int
    committed_at: datetime
    uploaded_by: str
    branch_code: str | None
    branch_name: str | None
    filename: str
    total_rows: int
    new_count: int
    changed_count: int
    unchanged_count: int
    warning_count: int
    accounts_created: int


@dataclass
class Preview:
    """The judged sheet. It stays on the server (page session or CLI process)
    and is what `commit` writes, once the fingerprint still matches."""
    parsed: ParsedSheet
    branch_id: int | None
    rows: list[PreviewRow]
    fingerprint: str
    already_imported: ImportSummary | None = None

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def new_count(self) -> int:
        return self.count(ImportRowOutcome.new)

    @property
    def changed_count(self) -> int:
        return self.count(ImportRowOutcome.changed)

    @property
    def unchanged_count(self) -> int:
        return self.count(ImportRowOutcome.unchanged)

    @property
    def error_count(self) -> int:
        return self.count(ERROR)

    @property
    def warning_count(self) -> int:
        return sum(1 for r in self.rows if r.warnings)

    @property
    def accounts_to_create(self) -> int:
        return sum(1 for r in self.rows if r.creates_account and r.status != ERROR)

    @property
    def ok(self) -> bool:
        return self.error_count == 0


@dataclass(frozen=True)
class CommitResult:
    import_id: int
    new_count: int
    changed_count: int
    unchanged_count: int
    accounts_created: int


# --- template -------------------------------------------------------------------------------------------------

def template_headers() -> list[str]:
    return [c.label for c in BINDING_COLUMNS]


def template_csv() -> bytes:
    """The header row in utf-8-sig, what Excel on Chinese Windows opens correctly."""
    return (",".join(template_headers()) + "\r\n").encode("utf-8-sig")


def template_xlsx(*, branch_codes: list[str], sheet_title: str, help_title: str, instructions: list[str],
                  example_caption: str, example: list[list[str]], validation_messages: dict[str, str]) -> bytes:
    """The upload template: ID columns formatted as text (so Excel keeps leading
    zeros), data validation on the branch code and the ID lengths, and a second
    sheet with instructions and an example. Texts come from the caller's catalog."""
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"strings_to_numbers": False, "strings_to_formulas": False,
                                        "strings_to_urls": False})
    text = book.add_format({"num_format": "@"})
    header = book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "num_format": "@"})
    sheet = book.add_worksheet(sheet_title)
    last = 100_000
    for index, column in enumerate(BINDING_COLUMNS):
        sheet.write_string(0, index, column.label, header)
        sheet.set_column(index, index, 24 if column.key.endswith("name") else 18, text)
    sheet.freeze_panes(1, 0)
    if branch_codes:
        sheet.data_validation(1, 0, last, 0, {
            "validate": "list", "source": branch_codes[:200], "ignore_blank": True,
            "error_title": validation_messages["title"], "error_message": validation_messages["branch_code"]})
    for position, key in ((1, "crm_store_id"), (3, "wecom_userid")):
        sheet.data_validation(1, position, last, position, {
            "validate": "length", "criteria": "between", "minimum": 1, "maximum": 64, "ignore_blank": True,
            "error_title": validation_messages["title"], "error_message": validation_messages[key]})
    sheet.data_validation(1, 4, last, 4, {
        "validate": "length", "criteria": "between", "minimum": 1, "maximum": 100, "ignore_blank": True,
        "error_title": validation_messages["title"], "error_message": validation_messages["wecom_name"]})
    help_sheet = book.add_worksheet(help_title)
    help_sheet.set_column(0, 0, 20, text)
    help_sheet.set_column(1, 4, 22, text)
    row = 0
    for line in instructions:
        help_sheet.write_string(row, 0, line)
        row += 1
    row += 1
    help_sheet.write_string(row, 0, example_caption, book.add_format({"bold": True}))
    row += 1
    for index, label in enumerate(template_headers()):
        help_sheet.write_string(row, index, label, header)
    for values in example:
        row += 1
        for index, value in enumerate(values):
            help_sheet.write_string(row, index, value, text)
    book.close()
    return buffer.getvalue()


# --- reading and judging --------------------------------------------------------------------------------------

def parse_sheet(data: bytes, filename: str) -> ParsedSheet:
    """Read the file (raises SheetError for a file that is not a usable sheet)."""
    sheet = read_sheet(data, filename, BINDING_COLUMNS)
    return ParsedSheet(filename=filename, sha256=hashlib.sha256(data).hexdigest(), rows=sheet.rows,
                       headers=sheet.headers, file_kind=sheet.file_kind, encoding=sheet.encoding)


def upload_branch(*, actor: Actor, branch_id: int | None) -> int | None:
    """The branch an upload is for: a scoped actor's own branch, else the chosen one."""
    require(actor, Capability.upload_bindings, branch_id=branch_id)
    return actor.branch_scope if actor.branch_scope is not None else branch_id


def _chunks(values: list) -> list[list]:
    return [values[i:i + _CHUNK] for i in range(0, len(values), _CHUNK)]


# Plain rows (not ORM objects) are read here: at 50,000 rows building ORM
# instances alone would cost more than the whole benchmark budget.
_STORE = Store.__table__
_BINDING = Binding.__table__
_ACCOUNT = Account.__table__
_STORE_COLS = (_STORE.c.id, _STORE.c.crm_store_id, _STORE.c.name, _STORE.c.branch_id, _STORE.c.status,
               _STORE.c.version)
_BINDING_COLS = (_BINDING.c.id, _BINDING.c.store_id, _BINDING.c.account_id, _BINDING.c.version, _BINDING.c.shown)
_ACCOUNT_COLS = (_ACCOUNT.c.id, _ACCOUNT.c.userid, _ACCOUNT.c.status)


def _stores_by_crm_id(session: Session, crm_ids: list[str], lock: bool) -> dict[str, Row]:
    found: dict[str, Row] = {}
    for chunk in _chunks(crm_ids):
        query = select(*_STORE_COLS).where(_STORE.c.crm_store_id.in_(chunk))
        if lock:
            # PostgreSQL: hold the affected stores until the commit ends (SQLite already
            # serialises writers, and the commit takes the write lock first).
            query = query.with_for_update()
        for store in session.execute(query):
            found[store.crm_store_id] = store
    return found


def _stores_by_id(session: Session, ids: set[int]) -> dict[int, Row]:
    found: dict[int, Row] = {}
    for chunk in _chunks(sorted(ids)):
        for store in session.execute(select(*_STORE_COLS).where(_STORE.c.id.in_(chunk))):
            found[store.id] = store
    return found


def _current_bindings(session: Session, column, ids: list[int]) -> dict[int, Row]:
    found: dict[int, Row] = {}
    for chunk in _chunks(sorted(set(ids))):
        for binding in session.execute(select(*_BINDING_COLS).where(column.in_(chunk), _BINDING.c.ended_at.is_(None))):
            found[binding._mapping[column]] = binding
    return found


def _accounts_by_userid(session: Session, userids: set[str]) -> dict[str, Row]:
    """Accounts by lower-cased userid (userids are case-insensitive unique)."""
    found: dict[str, Row] = {}
    for chunk in _chunks(sorted(userids)):
        for account in session.execute(select(*_ACCOUNT_COLS).where(func.lower(_ACCOUNT.c.userid).in_(chunk))):
            found[account.userid.lower()] = account
    return found


def _userids_of(session: Session, ids: set[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in _chunks(sorted(ids)):
        found.update(session.execute(select(_ACCOUNT.c.id, _ACCOUNT.c.userid).where(_ACCOUNT.c.id.in_(chunk))).all())
    return found


def _find_import(session: Session, sha256: str) -> BindingImport | None:
    return session.exec(select(BindingImport).where(BindingImport.sha256 == sha256)).first()


def _summary(session: Session, batch: BindingImport) -> ImportSummary:
    branch = session.get(Branch, batch.branch_id) if batch.branch_id else None
    return ImportSummary(batch.id, batch.committed_at, batch.uploaded_by_name, branch.code if branch else None,
                         branch.name if branch else None, batch.filename, batch.total_rows, batch.new_count,
                         batch.changed_count, batch.unchanged_count, batch.warning_count, batch.accounts_created)


def _file_checks(row: SheetRow, result: PreviewRow) -> None:
    """What the file alone says: formulas, numbers for IDs, cleaned spaces, blanks."""
    for note in row.notes:
        label = LABELS[note.field]
        if note.kind == "formula":
            result.errors.append(RowIssue("sheet.row.formula", {"column": label}))
        elif note.kind == "numeric_id":
            result.errors.append(RowIssue("sheet.row.numeric_id", {"column": label, "value": note.original}))
        elif note.kind == "normalized":
            result.warnings.append(RowIssue("binding_import.row.normalized",
                                            {"column": label, "value": note.original.strip() or note.original}))
    formula_fields = {n.field for n in row.notes if n.kind == "formula"}
    for key in REQUIRED_VALUES:
        if not row.values.get(key) and key not in formula_fields:
            result.errors.append(RowIssue("sheet.row.required", {"column": LABELS[key]}))
    if len(row.values.get("crm_store_id", "")) > 64:
        result.errors.append(RowIssue("binding_import.row.store_id_too_long", {}))
    userid = row.values.get("wecom_userid", "")
    if userid and not is_valid_userid(userid):
        result.errors.append(RowIssue("binding_import.row.bad_userid", {"userid": userid[:80]}))
    if len(row.values.get("wecom_name", "")) > 100:
        result.errors.append(RowIssue("binding_import.row.name_too_long", {}))


def _duplicates(rows: list[PreviewRow]) -> None:
    """The same store twice, or one account for two stores: every row involved is named."""
    by_store: dict[str, list[PreviewRow]] = defaultdict(list)
    by_account: dict[str, list[PreviewRow]] = defaultdict(list)
    for row in rows:
        if row.values.get("crm_store_id"):
            by_store[row.values["crm_store_id"]].append(row)
        if row.values.get("wecom_userid"):
            by_account[row.values["wecom_userid"].lower()].append(row)
    for group in by_store.values():
        if len(group) > 1:
            for row in group:
                others = "、".join(str(o.row_number) for o in group if o is not row)
                row.errors.append(RowIssue("binding_import.row.duplicate_store", {"rows": others}))
    for group in by_account.values():
        if len({r.values.get("crm_store_id") for r in group}) > 1:
            for row in group:
                others = "、".join(str(o.row_number) for o in group if o is not row)
                row.errors.append(RowIssue("binding_import.row.duplicate_account",
                                           {"userid": row.values["wecom_userid"], "rows": others}))


@dataclass
class _Snapshot:
    """The database state a judgement rests on, read in bulk."""
    branches: dict[str, Branch]
    stores: dict[str, Row]                # by CRM store ID
    store_bindings: dict[int, Row]        # current binding by store id
    accounts: dict[str, Row]              # by lower-cased userid
    account_bindings: dict[int, Row]      # current binding by account id
    stores_by_id: dict[int, Row]          # the file's stores and those holding its accounts
    previous_userids: dict[int, str]      # userid of each current binding's account


def _load(session: Session, values: list[dict[str, str]], lock: bool, for_commit: bool = False) -> _Snapshot:
    """The state the rows are judged on. The commit needs only what the
    fingerprint covers and what it writes: not the names used in messages."""
    branches = {b.code: b for b in session.exec(select(Branch))}
    stores = _stores_by_crm_id(session, sorted({v["crm_store_id"] for v in values if v.get("crm_store_id")}), lock)
    store_bindings = _current_bindings(session, _BINDING.c.store_id, [s.id for s in stores.values()])
    accounts = _accounts_by_userid(session, {v["wecom_userid"].lower() for v in values if v.get("wecom_userid")})
    account_bindings = _current_bindings(session, _BINDING.c.account_id, [a.id for a in accounts.values()])
    stores_by_id = {s.id: s for s in stores.values()}
    previous_userids: dict[int, str] = {}
    if not for_commit:
        stores_by_id.update(_stores_by_id(session, {b.store_id for b in account_bindings.values()}
                                          - set(stores_by_id)))
        previous_userids = _userids_of(session, {b.account_id for b in store_bindings.values()})
    return _Snapshot(branches, stores, store_bindings, accounts, account_bindings, stores_by_id, previous_userids)


def _judge(actor: Actor, parsed: ParsedSheet, branch_id: int | None, snap: _Snapshot) -> list[PreviewRow]:
    rows = [PreviewRow(row_number=r.row_number, values=r.values, raw=r.raw) for r in parsed.rows]
    for sheet_row, row in zip(parsed.rows, rows):
        _file_checks(sheet_row, row)
    _duplicates(rows)
    branch_codes = {b.id: b.code for b in snap.branches.values()}
    # Stores in this file that move to another account free their old account for another row.
    file_userid = {r.values.get("crm_store_id"): r.values.get("wecom_userid", "").lower() for r in rows}
    scope = actor.branch_scope
    for row in rows:
        v = row.values
        code, crm_id, userid = v.get("branch_code", ""), v.get("crm_store_id", ""), v.get("wecom_userid", "")
        branch = snap.branches.get(code) if code else None
        if code and branch is None:
            row.errors.append(RowIssue("binding_import.row.unknown_branch", {"branch": code}))
        elif branch is not None and scope is not None and branch.id != scope:
            row.errors.append(RowIssue("binding_import.row.branch_not_allowed", {"branch": code}))
        elif branch is not None and branch_id is not None and branch.id != branch_id:
            row.errors.append(RowIssue("binding_import.row.other_branch",
                                       {"branch": code, "upload_branch": branch_codes.get(branch_id, "")}))
        store = snap.stores.get(crm_id) if crm_id else None
        if crm_id and store is None:
            row.errors.append(RowIssue("binding_import.row.unknown_store", {"store": crm_id}))
        if store is not None:
            if branch is not None and store.branch_id != branch.id:
                row.errors.append(RowIssue("binding_import.row.store_in_other_branch",
                                           {"store": crm_id, "branch": branch_codes.get(store.branch_id, "")}))
            if store.status != StoreStatus.open:
                row.errors.append(RowIssue("binding_import.row.store_closed", {"store": crm_id}))
            given_name = v.get("store_name", "")
            if given_name and given_name != store.name:
                row.warnings.append(RowIssue("binding_import.row.store_name_differs",
                                             {"given": given_name, "known": store.name}))
        account = snap.accounts.get(userid.lower()) if userid else None
        row.creates_account = bool(userid) and account is None
        if account is not None:
            held = snap.account_bindings.get(account.id)
            if held is not None and (store is None or held.store_id != store.id):
                other = snap.stores_by_id.get(held.store_id)
                other_id = other.crm_store_id if other else ""
                if file_userid.get(other_id, userid.lower()) == userid.lower():
                    row.errors.append(RowIssue("binding_import.row.account_in_use",
                                               {"userid": account.userid, "store": other_id,
                                                "store_name": other.name if other else ""}))
            if account.status != AccountStatus.active:
                # Its entry will not show until the account is active again.
                row.warnings.append(RowIssue(f"binding_import.row.account_{account.status}",
                                             {"userid": account.userid}))
        if row.errors:
            row.status = ERROR
            continue
        current = snap.store_bindings.get(store.id)
        if current is None:
            row.status = ImportRowOutcome.new.value
        elif account is not None and current.account_id == account.id:
            row.status = ImportRowOutcome.unchanged.value
        else:
            row.status = ImportRowOutcome.changed.value
            row.previous_userid = snap.previous_userids.get(current.account_id)
    return rows


def _fingerprint(actor: Actor, branch_id: int | None, snap: _Snapshot) -> str:
    """Everything the judgement rests on: who judges for which branch, the
    branches, each affected store (version, status, branch, current binding and
    its version) and each named account (status, current binding and its version)."""
    none = (None, None, None)
    state = (
        (actor.role.value, actor.branch_scope, branch_id),
        sorted((code, b.id) for code, b in snap.branches.items()),
        sorted((s.crm_store_id, s.id, s.version, s.status, s.branch_id,
                *((b.id, b.version, b.account_id) if (b := snap.store_bindings.get(s.id)) else none))
               for s in snap.stores.values()),
        sorted((userid, a.id, a.status,
                *((b.id, b.version, b.store_id) if (b := snap.account_bindings.get(a.id)) else none))
               for userid, a in snap.accounts.items()),
    )
    return hashlib.sha256(repr(state).encode()).hexdigest()


def preview(*, session: Session, actor: Actor, parsed: ParsedSheet, branch_id: int | None = None) -> Preview:
    """Judge every row against the database; nothing is written."""
    branch_id = upload_branch(actor=actor, branch_id=branch_id)
    snap = _load(session, [r.values for r in parsed.rows], lock=False)
    result = Preview(parsed=parsed, branch_id=branch_id, rows=_judge(actor, parsed, branch_id, snap),
                     fingerprint=_fingerprint(actor, branch_id, snap))
    earlier = _find_import(session, parsed.sha256)
    if earlier is not None:
        result.already_imported = _summary(session, earlier)
    return result


# --- commit ---------------------------------------------------------------------------------------------------

def commit(*, session: Session, actor: Actor, preview: Preview, confirm_warnings: bool = False) -> CommitResult:
    """Write a previewed sheet in the caller's transaction, all or nothing.

    Refuses (and writes nothing) when any row is wrong, when warnings were not
    confirmed, when the same file was committed before, or when anything the
    preview's judgement rests on changed since (the fingerprint, read again
    here under lock).
    """
    branch_id = upload_branch(actor=actor, branch_id=preview.branch_id)
    if not preview.ok:
        raise InvalidInput("binding_import.has_errors", count=preview.error_count)
    if preview.warning_count and not confirm_warnings:
        raise InvalidInput("binding_import.confirm_warnings", count=preview.warning_count)
    parsed, now = preview.parsed, utcnow()
    batch = BindingImport(branch_id=branch_id, uploaded_by_id=actor.user_id, uploaded_by_name=actor.name[:64],
                          filename=parsed.filename[:255], sha256=parsed.sha256, total_rows=len(parsed.rows),
                          new_count=preview.new_count, changed_count=preview.changed_count,
                          unchanged_count=preview.unchanged_count, warning_count=preview.warning_count,
                          accounts_created=preview.accounts_to_create, committed_at=now)
    # The batch row goes in first: on SQLite that takes the write lock before
    # anything is read, and the unique hash stops a double commit of one file.
    session.add(batch)
    try:
        session.flush()
    except IntegrityError:
        raise AlreadyImported("binding_import.already_imported_meanwhile") from None
    snap = _load(session, [r.values for r in preview.rows], lock=True, for_commit=True)
    if _fingerprint(actor, branch_id, snap) != preview.fingerprint:
        raise ConcurrentEdit("binding_import.changed_since_preview")
    try:
        _write(session, actor, preview.rows, snap, batch.id, now)
    except IntegrityError:
        # A binding started elsewhere after the fingerprint was read (the partial unique indexes).
        raise ConcurrentEdit("binding_import.changed_since_preview") from None
    audit.record(session=session, actor=actor, action="bindings.import", entity_type="import", entity_id=batch.id,
                 branch_id=branch_id,
                 after={"file": parsed.filename, "sha256": parsed.sha256, "rows": batch.total_rows,
                        "new": batch.new_count, "changed": batch.changed_count,
                        "unchanged": batch.unchanged_count, "warnings": batch.warning_count,
                        "accounts_created": batch.accounts_created})
    session.flush()
    return CommitResult(batch.id, batch.new_count, batch.changed_count, batch.unchanged_count,
                        batch.accounts_created)


def _write(session: Session, actor: Actor, rows: list[PreviewRow], snap: _Snapshot, import_id: int,
           now: datetime) -> None:
    """Bulk statements on the tables (no ORM unit of work): 50,000 rows in seconds."""
    connection = session.connection()
    stores, accounts = snap.stores, dict(snap.accounts)
    entries: list[dict] = []

    to_create = {r.values["wecom_userid"].lower(): r for r in rows if r.creates_account}
    if to_create:
        limit = settings_store.effective(session=session, key="capacity.default_limit")
        values = [{"userid": r.values["wecom_userid"], "name": r.values["wecom_name"], "capacity_limit": limit,
                   "status": AccountStatus.active.value, "customer_count": 0, "version": 1,
                   "created_at": now, "updated_at": now} for r in to_create.values()]
        insert_many(connection, _ACCOUNT, values)
        accounts.update(_accounts_by_userid(session, set(to_create)))
        for v in values:
            entries.append({"action": "account.create", "entity_type": "account", "entity_id": v["userid"],
                            "branch_id": stores[to_create[v["userid"].lower()].values["crm_store_id"]].branch_id,
                            "after": {"userid": v["userid"], "name": v["name"], "capacity_limit": limit,
                                      "status": v["status"], "import": import_id}})

    replaced = [r for r in rows if r.status == ImportRowOutcome.changed]
    if replaced:
        old = [snap.store_bindings[stores[r.values["crm_store_id"]].id] for r in replaced]
        # Compare-and-set: each binding must still be at the version the judgement read.
        ended = connection.execute(
            _BINDING.update()
            .where(_BINDING.c.id == bindparam("b_id"), _BINDING.c.version == bindparam("b_version"),
                   _BINDING.c.ended_at.is_(None))
            .values(ended_at=now, end_reason=BindingEndReason.replaced.value, ended_by_id=actor.user_id,
                    shown=False, version=bindparam("b_next"), updated_at=now),
            [{"b_id": b.id, "b_version": b.version, "b_next": b.version + 1} for b in old])
        if ended.rowcount != len(old):
            raise ConcurrentEdit("binding_import.changed_since_preview")
        for row, binding in zip(replaced, old):
            store = stores[row.values["crm_store_id"]]
            entries.append({"action": "binding.end", "entity_type": "binding", "entity_id": binding.id,
                            "branch_id": store.branch_id,
                            "before": {"store": store.crm_store_id, "account": row.previous_userid,
                                       "shown": binding.shown, "current": True},
                            "after": {"store": store.crm_store_id, "account": row.previous_userid, "shown": False,
                                      "current": False, "end_reason": BindingEndReason.replaced.value,
                                      "import": import_id}})

    starting = [r for r in rows if r.status in (ImportRowOutcome.new, ImportRowOutcome.changed)]
    if starting:
        # New bindings start hidden and wait for HQ's review (绑定后默认不显示).
        before = session.execute(select(func.max(_BINDING.c.id))).scalar() or 0
        insert_many(connection, _BINDING, [
            {"store_id": stores[r.values["crm_store_id"]].id, "account_id": accounts[r.values["wecom_userid"].lower()].id,
             "shown": False, "started_at": now, "created_by_id": actor.user_id, "reviewed_at": None,
             "reviewed_by_id": None, "ended_at": None, "end_reason": None, "ended_by_id": None, "version": 1,
             "updated_at": now}
            for r in starting])
        # Read the new ids back (RETURNING with executemany runs row by row on SQLite).
        started = dict(session.execute(select(_BINDING.c.store_id, _BINDING.c.id)
                                       .where(_BINDING.c.id > before, _BINDING.c.ended_at.is_(None))).all())
        for row in starting:
            store = stores[row.values["crm_store_id"]]
            entries.append({"action": "binding.start", "entity_type": "binding", "entity_id": started[store.id],
                            "branch_id": store.branch_id,
                            "after": {"store": store.crm_store_id,
                                      "account": accounts[row.values["wecom_userid"].lower()].userid,
                                      "shown": False, "current": True, "reviewed": False, "import": import_id}})

    insert_many(connection, BindingImportRow.__table__, [{
        "import_id": import_id, "row_number": r.row_number, "crm_store_id": r.values["crm_store_id"],
        "store_name": r.values.get("store_name", "")[:200], "wecom_userid": r.values["wecom_userid"],
        "wecom_name": r.values["wecom_name"], "outcome": r.status, "previous_userid": r.previous_userid,
        "warnings_json": json.dumps([{"key": w.key, "params": w.params} for w in r.warnings], ensure_ascii=False)
        if r.warnings else None,
    } for r in rows])
    audit.record_many(session=session, actor=actor, entries=entries)


# --- history --------------------------------------------------------------------------------------------------

def list_imports(*, session: Session, actor: Actor, offset: int = 0, limit: int = 50) -> tuple[list[ImportSummary], int]:
    """Committed batches, newest first; a scoped actor sees only the own branch's."""
    require(actor, Capability.upload_bindings)
    conditions = []
    if actor.branch_scope is not None:
        conditions.append(BindingImport.branch_id == actor.branch_scope)
    total = session.exec(select(func.count()).select_from(BindingImport).where(*conditions)).one()
    batches = session.exec(select(BindingImport).where(*conditions)
                           .order_by(col(BindingImport.committed_at).desc(), col(BindingImport.id).desc())
                           .offset(offset).limit(limit)).all()
    branches = {b.id: b for b in session.exec(select(Branch))}
    summaries = []
    for batch in batches:
        branch = branches.get(batch.branch_id)
        summaries.append(ImportSummary(batch.id, batch.committed_at, batch.uploaded_by_name,
                                       branch.code if branch else None, branch.name if branch else None,
                                       batch.filename, batch.total_rows, batch.new_count, batch.changed_count,
                                       batch.unchanged_count, batch.warning_count, batch.accounts_created))
    return summaries, total


@dataclass(frozen=True)
class ImportedRow:
    row_number: int
    crm_store_id: str
    store_name: str
    wecom_userid: str
    wecom_name: str
    outcome: str
    previous_userid: str | None
    warnings: list[RowIssue]


def import_rows(*, session: Session, actor: Actor, import_id: int, outcome: str | None = None,
                offset: int = 0, limit: int = 50) -> tuple[list[ImportedRow], int]:
    """One page of a batch's rows and what each did."""
    require(actor, Capability.upload_bindings)
    batch = session.get(BindingImport, import_id)
    if batch is None:
        raise NotFound()
    if actor.branch_scope is not None and batch.branch_id != actor.branch_scope:
        raise PermissionDenied("error.branch_out_of_scope")
    conditions = [BindingImportRow.import_id == import_id]
    if outcome:
        conditions.append(BindingImportRow.outcome == outcome)
    total = session.exec(select(func.count()).select_from(BindingImportRow).where(*conditions)).one()
    rows = session.exec(select(BindingImportRow).where(*conditions).order_by(BindingImportRow.row_number)
                        .offset(offset).limit(limit)).all()
    return [ImportedRow(r.row_number, r.crm_store_id, r.store_name, r.wecom_userid, r.wecom_name, r.outcome,
                        r.previous_userid,
                        [RowIssue(w["key"], w["params"]) for w in json.loads(r.warnings_json or "[]")])
            for r in rows], total


def actor_for_username(*, session: Session, username: str) -> Actor:
    """The command line acts as a named console user, with that user's rights."""
    from core.auth.sessions import actor_for, find_user, user_can_log_in

    user = find_user(session=session, username=username)
    if user is None:
        raise NotFound("binding_import.unknown_user", username=username)
    if not user_can_log_in(user, utcnow()):
        raise PermissionDenied("binding_import.user_inactive", username=username)
    return actor_for(user)


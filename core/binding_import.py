"""Binding sheets (绑定表): a branch's CRM-store-ID ↔ WeCom-account pairs, uploaded
as a sheet, checked row by row, previewed, then committed all or nothing.

One code path for the upload page and `python -m console import-bindings`:
`parse_sheet` reads the file (no database), `preview` judges every row against
the database and keeps the state it judged on, `commit` reads that state again
inside its own transaction and refuses when it moved (someone changed an
affected store, binding or account since the preview). The commit writes in
bulk so that a 50,000-row sheet stays within the benchmark budget.
"""

import gc
import hashlib
import io
import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import Row, String, any_, bindparam, func, literal_column
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from console.messages import error_text, t
from core import audit, settings_store
from core.accounts import is_valid_userid
from core.errors import ConcurrentEdit, DomainError, InvalidInput, NotFound, PermissionDenied
from core.exports import to_xlsx_bytes
from core.permissions import Actor, Capability, require
from core.sheets import SheetColumn, SheetRow, read_sheet
from core.timeutil import format_display, utcnow
from db.bulk import insert_many
from db.models import (Account, AccountStatus, Binding, BindingEndReason, BindingImport,
                       BindingImportRow, Branch, ImportRowOutcome, Store, StoreStatus)
from db.models.imports import BindingImportBranch

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


class AlreadyImported(DomainError):
    """The same file was committed before and would change nothing; nothing is written."""


class _GcPause:
    """The cyclic garbage collector off while an import runs. Reading and
    judging 50,000 rows allocates millions of small objects, none of them in a
    cycle, and each collection pass walks them all: a quarter of the run time.
    Reference counting still frees everything; collection resumes when the
    last import running in this process is done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._running == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._running += 1

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0 and self._was_enabled:
                gc.enable()


_gc_paused = _GcPause()


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
    sheet_name: str | None = None
    header_row: int = 1


@dataclass(slots=True)
class PreviewRow:
    source: SheetRow
    values: dict[str, str]
    status: str = ImportRowOutcome.new.value  # new | changed | unchanged | error
    errors: list[RowIssue] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)
    previous_userid: str | None = None
    creates_account: bool = False

    @property
    def row_number(self) -> int:
        return self.source.row_number

    @property
    def raw(self) -> dict[str, str]:
        """Every column of the uploaded row, as the file had it."""
        return self.source.raw


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
    and is what `commit` writes, once the state it was judged on is unchanged."""
    parsed: ParsedSheet
    branch_id: int | None
    rows: list[PreviewRow]
    basis: tuple  # what the judgement rests on, as read from the database
    branch_ids: list[int] = field(default_factory=list)  # the branches of the rows' stores
    already_imported: ImportSummary | None = None  # the latest commit of the same file

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

    @property
    def changes_something(self) -> bool:
        return bool(self.new_count or self.changed_count)

    @property
    def repeats_earlier_import(self) -> bool:
        """The same file was committed before and would change nothing now."""
        return self.already_imported is not None and not self.changes_something


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


def template_xlsx(*, branch_codes: list[str], sheet_title: str, help_title: str, codes_title: str,
                  instructions: list[str], example_caption: str, example: list[list[str]],
                  validation_messages: dict[str, str]) -> bytes:
    """The upload template: ID columns formatted as text (so Excel keeps leading
    zeros), data validation on the branch code and the ID lengths, and a second
    sheet with instructions and an example. The branch codes live on a hidden
    sheet the validation refers to: a list written into the validation itself
    may hold 255 characters, some fifty codes. Texts come from the caller's catalog."""
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
    help_sheet = book.add_worksheet(help_title)
    codes_sheet = book.add_worksheet(codes_title)
    if branch_codes:
        for row, code in enumerate(branch_codes):
            codes_sheet.write_string(row, 0, code, text)
        quoted = codes_title.replace("'", "''")
        sheet.data_validation(1, 0, last, 0, {
            "validate": "list", "source": f"='{quoted}'!$A$1:$A${len(branch_codes)}", "ignore_blank": True,
            "error_title": validation_messages["title"], "error_message": validation_messages["branch_code"]})
    codes_sheet.hide()
    for position, key in ((1, "crm_store_id"), (3, "wecom_userid")):
        sheet.data_validation(1, position, last, position, {
            "validate": "length", "criteria": "between", "minimum": 1, "maximum": 64, "ignore_blank": True,
            "error_title": validation_messages["title"], "error_message": validation_messages[key]})
    sheet.data_validation(1, 4, last, 4, {
        "validate": "length", "criteria": "between", "minimum": 1, "maximum": 100, "ignore_blank": True,
        "error_title": validation_messages["title"], "error_message": validation_messages["wecom_name"]})
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
    """Read the file (raises SheetError for a file that is not a usable sheet).
    The template's instructions sheet, with its example rows, is never read."""
    with _gc_paused:
        sheet = read_sheet(data, filename, BINDING_COLUMNS, skip_sheets=[t("binding_import.template.help_sheet")])
    return ParsedSheet(filename=filename, sha256=hashlib.sha256(data).hexdigest(), rows=sheet.rows,
                       headers=sheet.headers, file_kind=sheet.file_kind, encoding=sheet.encoding,
                       sheet_name=sheet.sheet_name, header_row=sheet.header_row)


def upload_branch(*, actor: Actor, branch_id: int | None) -> int | None:
    """The branch an upload is for: a scoped actor's own branch, else the chosen one."""
    require(actor, Capability.upload_bindings, branch_id=branch_id)
    return actor.branch_scope if actor.branch_scope is not None else branch_id


# Plain rows (not ORM objects) are read here: at 50,000 rows building ORM
# instances alone would cost more than the whole benchmark budget.
_STORE = Store.__table__
_BINDING = Binding.__table__
_ACCOUNT = Account.__table__
_BOUND_ACCOUNT = _ACCOUNT.alias("bound_account")
_BOUND_STORE = _STORE.alias("bound_store")


def _one_of(session: Session, column, values: list[str]):
    """`column IN values` with all the values in one bound parameter (an array
    on PostgreSQL, a JSON list on SQLite): rendering and binding a 50,000-value
    IN list costs more than running the query."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(String)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam(None, json.dumps(values)))))


def _store_rows(session: Session, crm_ids: list[str], lock: bool) -> list[Row]:
    """The file's stores, each with its current binding and that binding's account."""
    query = (select(_STORE.c.id, _STORE.c.crm_store_id, _STORE.c.name, _STORE.c.branch_id, _STORE.c.status,
                    _STORE.c.version, _BINDING.c.id.label("binding_id"),
                    _BINDING.c.account_id.label("bound_account_id"), _BINDING.c.version.label("binding_version"),
                    _BINDING.c.shown.label("binding_shown"), _BOUND_ACCOUNT.c.userid.label("bound_userid"))
             .select_from(_STORE.outerjoin(_BINDING, (_BINDING.c.store_id == _STORE.c.id)
                                           & _BINDING.c.ended_at.is_(None))
                          .outerjoin(_BOUND_ACCOUNT, _BOUND_ACCOUNT.c.id == _BINDING.c.account_id))
             .where(_one_of(session, _STORE.c.crm_store_id, crm_ids))
             .order_by(_STORE.c.id))
    if lock:
        # PostgreSQL: hold the affected stores until the commit ends (SQLite already
        # serialises writers, and the commit takes the write lock first).
        query = query.with_for_update(of=_STORE)
    return session.execute(query).all()


def _account_rows(session: Session, userids: list[str]) -> list[Row]:
    """The accounts the file names (by lower-cased userid: userids are
    case-insensitive unique), each with the store it is current for."""
    query = (select(_ACCOUNT.c.id, _ACCOUNT.c.userid, _ACCOUNT.c.status, _BINDING.c.id.label("binding_id"),
                    _BINDING.c.store_id.label("bound_store_id"), _BINDING.c.version.label("binding_version"),
                    _BOUND_STORE.c.crm_store_id.label("bound_crm_store_id"),
                    _BOUND_STORE.c.name.label("bound_store_name"))
             .select_from(_ACCOUNT.outerjoin(_BINDING, (_BINDING.c.account_id == _ACCOUNT.c.id)
                                             & _BINDING.c.ended_at.is_(None))
                          .outerjoin(_BOUND_STORE, _BOUND_STORE.c.id == _BINDING.c.store_id))
             .where(_one_of(session, func.lower(_ACCOUNT.c.userid), userids))
             .order_by(_ACCOUNT.c.id))
    return session.execute(query).all()


def _find_import(session: Session, sha256: str) -> BindingImport | None:
    return session.exec(select(BindingImport).where(BindingImport.sha256 == sha256)
                        .order_by(col(BindingImport.id).desc())).first()


def _summary(session: Session, batch: BindingImport) -> ImportSummary:
    return _summary_of(batch, batch, session.get(Branch, batch.branch_id) if batch.branch_id else None)


def _numeric_id_issue(label: str, key: str, detail: str, value: str) -> tuple[str, RowIssue]:
    """("errors" or "warnings", the issue) for an ID that Excel may have turned
    into a number. Only what can really have been lost is named: leading zeros
    of an integer, digits of a fraction or of a number over 15 digits."""
    if detail == "decimal_text" and key == "wecom_userid":
        # A userid may legitimately be 2023.0; a store ID or branch code is not.
        return "warnings", RowIssue("binding_import.row.numeric_decimal_userid", {"value": value})
    if detail in ("decimal_text", "exponent_text"):
        return "errors", RowIssue(f"binding_import.row.numeric_{detail}", {"column": label, "value": value})
    if detail == "inexact_number_cell":
        return "errors", RowIssue("binding_import.row.numeric_inexact", {"column": label, "value": value})
    if key == "wecom_userid":
        # Userids rarely start with 0: an integer cell most likely reads as typed.
        return "warnings", RowIssue("binding_import.row.numeric_userid", {"value": value})
    return "errors", RowIssue("sheet.row.numeric_id", {"column": label, "value": value})


def _file_checks(row: SheetRow, result: PreviewRow) -> None:
    """What the file alone says: formulas, numbers for IDs, cleaned spaces, blanks."""
    values = result.values
    formula_fields = set()
    for note in row.notes:
        label = LABELS[note.field]
        if note.kind == "formula":
            result.errors.append(RowIssue("sheet.row.formula", {"column": label}))
            formula_fields.add(note.field)
        elif note.kind == "numeric_id":
            kind, issue = _numeric_id_issue(label, note.field, note.detail, values[note.field])
            getattr(result, kind).append(issue)
        elif note.kind == "normalized":
            result.warnings.append(RowIssue("binding_import.row.normalized",
                                            {"column": label, "value": note.original.strip() or note.original}))
    for key in REQUIRED_VALUES:
        if not values.get(key) and key not in formula_fields:
            result.errors.append(RowIssue("sheet.row.required", {"column": LABELS[key]}))
    if len(values.get("crm_store_id", "")) > 64:
        result.errors.append(RowIssue("binding_import.row.store_id_too_long", {}))
    userid = values.get("wecom_userid", "")
    if userid and not is_valid_userid(userid):
        result.errors.append(RowIssue("binding_import.row.bad_userid", {"userid": userid[:80]}))
    if len(values.get("wecom_name", "")) > 100:
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
        if len(group) > 1 and len({r.values.get("crm_store_id") for r in group}) > 1:
            for row in group:
                others = "、".join(str(o.row_number) for o in group if o is not row)
                row.errors.append(RowIssue("binding_import.row.duplicate_account",
                                           {"userid": row.values["wecom_userid"], "rows": others}))


@dataclass
class _Snapshot:
    """The database state a judgement rests on, read in bulk."""
    branch_codes: dict[str, int]   # branch id by code
    stores: dict[str, Row]         # by CRM store ID, with the current binding
    accounts: dict[str, Row]       # by lower-cased userid, with the current binding
    basis: tuple                   # all of the above, compared as is at commit


def _load(session: Session, actor: Actor, branch_id: int | None, values: list[dict[str, str]],
          lock: bool) -> _Snapshot:
    branches = session.execute(select(Branch.id, Branch.code).order_by(Branch.id)).all()
    store_rows = _store_rows(session, sorted({v["crm_store_id"] for v in values if v.get("crm_store_id")}), lock)
    account_rows = _account_rows(session, sorted({v["wecom_userid"].lower() for v in values
                                                   if v.get("wecom_userid")}))
    # Who judges for which branch, the branches, each affected store (version,
    # status, branch, current binding and its version) and each named account
    # (status, current binding and its version): equal lists at commit mean
    # the preview's judgement still holds.
    basis = ((actor.role.value, actor.branch_scope, branch_id), [tuple(b) for b in branches],
             [tuple(s) for s in store_rows], [tuple(a) for a in account_rows])
    return _Snapshot({code: branch for branch, code in branches}, {s.crm_store_id: s for s in store_rows},
                     {a.userid.lower(): a for a in account_rows}, basis)


def _judge(actor: Actor, parsed: ParsedSheet, branch_id: int | None, snap: _Snapshot) -> list[PreviewRow]:
    rows = [PreviewRow(r, r.values) for r in parsed.rows]
    for sheet_row, row in zip(parsed.rows, rows):
        _file_checks(sheet_row, row)
    _duplicates(rows)
    branch_codes = {branch: code for code, branch in snap.branch_codes.items()}
    # Stores in this file that move to another account free their old account for another row.
    file_userid = {r.values.get("crm_store_id"): r.values.get("wecom_userid", "").lower() for r in rows}
    scope = actor.branch_scope
    for row in rows:
        v = row.values
        code, crm_id, userid = v.get("branch_code", ""), v.get("crm_store_id", ""), v.get("wecom_userid", "")
        branch = snap.branch_codes.get(code) if code else None
        if code and branch is None:
            row.errors.append(RowIssue("binding_import.row.unknown_branch", {"branch": code}))
        elif branch is not None and scope is not None and branch != scope:
            row.errors.append(RowIssue("binding_import.row.branch_not_allowed", {"branch": code}))
        elif branch is not None and branch_id is not None and branch != branch_id:
            row.errors.append(RowIssue("binding_import.row.other_branch",
                                       {"branch": code, "upload_branch": branch_codes.get(branch_id, "")}))
        store = snap.stores.get(crm_id) if crm_id else None
        if crm_id and store is None:
            row.errors.append(RowIssue("binding_import.row.unknown_store", {"store": crm_id}))
        if store is not None:
            if branch is not None and store.branch_id != branch:
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
            if account.binding_id is not None and (store is None or account.bound_store_id != store.id):
                other_id = account.bound_crm_store_id
                if file_userid.get(other_id, userid.lower()) == userid.lower():
                    row.errors.append(RowIssue("binding_import.row.account_in_use",
                                               {"userid": account.userid, "store": other_id,
                                                "store_name": account.bound_store_name}))
            if account.status != AccountStatus.active:
                # Its entry will not show until the account is active again.
                row.warnings.append(RowIssue(f"binding_import.row.account_{account.status}",
                                             {"userid": account.userid}))
        if row.errors:
            row.status = ERROR
            continue
        if store.binding_id is None:
            row.status = ImportRowOutcome.new.value
        elif account is not None and store.bound_account_id == account.id:
            row.status = ImportRowOutcome.unchanged.value
        else:
            row.status = ImportRowOutcome.changed.value
            row.previous_userid = store.bound_userid
    return rows


def preview(*, session: Session, actor: Actor, parsed: ParsedSheet, branch_id: int | None = None) -> Preview:
    """Judge every row against the database; nothing is written."""
    branch_id = upload_branch(actor=actor, branch_id=branch_id)
    with _gc_paused:
        snap = _load(session, actor, branch_id, [r.values for r in parsed.rows], lock=False)
        rows = _judge(actor, parsed, branch_id, snap)
    result = Preview(parsed=parsed, branch_id=branch_id, rows=rows, basis=snap.basis,
                     branch_ids=sorted({snap.stores[r.values["crm_store_id"]].branch_id
                                        for r in rows if r.status != ERROR}))
    earlier = _find_import(session, parsed.sha256)
    if earlier is not None:
        result.already_imported = _summary(session, earlier)
    return result


def error_report_xlsx(preview: Preview) -> bytes:
    """The uploaded rows as the file had them, with the Excel row number, the
    status and the reasons beside them. The file's own columns keep their
    names; where one of ours is taken, ours gets a suffix."""
    taken = set(preview.parsed.headers)

    def ours(key: str) -> str:
        name = t(key)
        while name in taken:
            name += t("binding_import.report.ours")
        taken.add(name)
        return name

    row_column, status_column, reason_column = (ours("binding_import.col.row"), ours("binding_import.col.status"),
                                                ours("binding_import.col.reason"))
    statuses = {s: t(f"binding_import.status.{s}") for s in ("new", "changed", "unchanged", ERROR)}
    frame = pd.DataFrame([{row_column: r.row_number, **r.raw, status_column: statuses[r.status],
                           reason_column: row_reasons(r)} for r in preview.rows],
                         columns=[row_column, *preview.parsed.headers, status_column, reason_column])
    return to_xlsx_bytes(frame, t("binding_import.template.sheet"))


def row_reasons(row: PreviewRow) -> str:
    """A row's errors, then its warnings, in words."""
    return "；".join(error_text(DomainError(i.key, **i.params)) for i in row.errors + row.warnings)


# --- commit ---------------------------------------------------------------------------------------------------

def commit(*, session: Session, actor: Actor, preview: Preview, confirm_warnings: bool = False) -> CommitResult:
    """Write a previewed sheet in the caller's transaction, all or nothing.

    Refuses (and writes nothing) when any row is wrong, when warnings were not
    confirmed, when the same file was committed before and would change
    nothing, or when anything the preview's judgement rests on changed since
    (read again here, under lock).
    """
    branch_id = upload_branch(actor=actor, branch_id=preview.branch_id)
    if not preview.ok:
        raise InvalidInput("binding_import.has_errors", count=preview.error_count)
    if preview.warning_count and not confirm_warnings:
        raise InvalidInput("binding_import.confirm_warnings", count=preview.warning_count)
    parsed = preview.parsed
    if not preview.changes_something:
        earlier = _find_import(session, parsed.sha256)
        if earlier is not None:
            raise AlreadyImported("binding_import.already_imported", at=format_display(earlier.committed_at),
                                  user=earlier.uploaded_by_name, id=earlier.id)
    with _gc_paused:
        return _commit(session, actor, preview, branch_id)


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
    snap = _load(session, actor, branch_id, [r.values for r in preview.rows], lock=True)
    if snap.basis != preview.basis:
        raise ConcurrentEdit("binding_import.changed_since_preview")
    try:
        _write(session, actor, preview.rows, snap, batch.id, now)
    except IntegrityError:
        # A binding started elsewhere after the state was read (the partial unique indexes).
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


# JSON text of one string (or null), as audit entries store it: rendered here
# row by row with the keys in sorted order, 50,000 entries in a fraction of a second.
_json = json.JSONEncoder(ensure_ascii=False).encode
_COUNT_FIELDS = {ImportRowOutcome.new.value: 1, ImportRowOutcome.changed.value: 2,
                 ImportRowOutcome.unchanged.value: 3}


def _write(session: Session, actor: Actor, rows: list[PreviewRow], snap: _Snapshot, import_id: int,
           now: datetime) -> None:
    """Bulk statements on the tables (no ORM unit of work): 50,000 rows in seconds."""
    connection = session.connection()
    stores = snap.stores
    account_ids = {key: a.id for key, a in snap.accounts.items()}
    userids = {key: a.userid for key, a in snap.accounts.items()}
    entries: list[tuple] = []  # (action, entity type, entity id, branch id, before JSON, after JSON)

    to_create = {r.values["wecom_userid"].lower(): r for r in rows if r.creates_account}
    if to_create:
        limit = settings_store.effective(session=session, key="capacity.default_limit")
        limit_json = _json(limit)
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
        for r in to_create.values():
            v = r.values
            entries.append(("account.create", "account", v["wecom_userid"], stores[v["crm_store_id"]].branch_id,
                            None,
                            f'{{"capacity_limit": {limit_json}, "import": {import_id}, "name": {_json(v["wecom_name"])}, '
                            f'"status": "active", "userid": {_json(v["wecom_userid"])}}}'))

    replaced = [r for r in rows if r.status == ImportRowOutcome.changed]
    if replaced:
        old = [stores[r.values["crm_store_id"]] for r in replaced]
        # Compare-and-set: each binding must still be at the version the judgement read.
        ended = connection.execute(
            _BINDING.update()
            .where(_BINDING.c.id == bindparam("b_id"), _BINDING.c.version == bindparam("b_version"),
                   _BINDING.c.ended_at.is_(None))
            .values(ended_at=now, end_reason=BindingEndReason.replaced.value, ended_by_id=actor.user_id,
                    shown=False, version=bindparam("b_next"), updated_at=now),
            [{"b_id": s.binding_id, "b_version": s.binding_version, "b_next": s.binding_version + 1} for s in old])
        if ended.rowcount != len(old):
            raise ConcurrentEdit("binding_import.changed_since_preview")
        for row, store in zip(replaced, old):
            crm, previous = _json(store.crm_store_id), _json(row.previous_userid)
            entries.append(("binding.end", "binding", store.binding_id, store.branch_id,
                            f'{{"account": {previous}, "current": true, '
                            f'"shown": {"true" if store.binding_shown else "false"}, "store": {crm}}}',
                            f'{{"account": {previous}, "current": false, "end_reason": "replaced", '
                            f'"import": {import_id}, "shown": false, "store": {crm}}}'))

    starting = [r for r in rows if r.status in (ImportRowOutcome.new, ImportRowOutcome.changed)]
    if starting:
        # New bindings start hidden and wait for HQ's review (绑定后默认不显示).
        before = session.execute(select(func.max(_BINDING.c.id))).scalar() or 0
        insert_many(connection, _BINDING, [
            {"store_id": stores[r.values["crm_store_id"]].id, "account_id": account_ids[r.values["wecom_userid"].lower()],
             "shown": False, "started_at": now, "created_by_id": actor.user_id, "reviewed_at": None,
             "reviewed_by_id": None, "ended_at": None, "end_reason": None, "ended_by_id": None, "version": 1,
             "updated_at": now}
            for r in starting])
        started = dict(session.execute(select(_BINDING.c.store_id, _BINDING.c.id)
                                       .where(_BINDING.c.id > before, _BINDING.c.ended_at.is_(None))).all())
        for row in starting:
            store = stores[row.values["crm_store_id"]]
            entries.append(("binding.start", "binding", started[store.id], store.branch_id, None,
                            f'{{"account": {_json(userids[row.values["wecom_userid"].lower()])}, "current": true, '
                            f'"import": {import_id}, "reviewed": false, "shown": false, '
                            f'"store": {_json(store.crm_store_id)}}}'))

    per_branch: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for r in rows:
        figures = per_branch[stores[r.values["crm_store_id"]].branch_id]
        figures[0] += 1
        figures[_COUNT_FIELDS[r.status]] += 1
        figures[4] += bool(r.warnings)
        figures[5] += r.creates_account
    insert_many(connection, BindingImportBranch.__table__, [
        {"import_id": import_id, "branch_id": branch, "total_rows": f[0], "new_count": f[1], "changed_count": f[2],
         "unchanged_count": f[3], "warning_count": f[4], "accounts_created": f[5]}
        for branch, f in per_branch.items()])
    insert_many(connection, BindingImportRow.__table__, [{
        "import_id": import_id, "row_number": r.row_number, "branch_id": stores[r.values["crm_store_id"]].branch_id,
        "crm_store_id": r.values["crm_store_id"], "store_name": r.values.get("store_name", "")[:200],
        "wecom_userid": r.values["wecom_userid"], "wecom_name": r.values["wecom_name"], "outcome": r.status,
        "previous_userid": r.previous_userid,
        "warnings_json": json.dumps([{"key": w.key, "params": w.params} for w in r.warnings], ensure_ascii=False)
        if r.warnings else None,
    } for r in rows])
    audit.record_many(session=session, actor=actor, at=now, entries=entries)


# --- history --------------------------------------------------------------------------------------------------

def list_imports(*, session: Session, actor: Actor, offset: int = 0, limit: int = 50) -> tuple[list[ImportSummary], int]:
    """Committed batches, newest first. A scoped actor sees the batches that
    touched the own branch, with the own branch's figures."""
    require(actor, Capability.upload_bindings)
    branches = {b.id: b for b in session.exec(select(Branch))}
    order = (col(BindingImport.committed_at).desc(), col(BindingImport.id).desc())
    if actor.branch_scope is None:
        total = session.exec(select(func.count()).select_from(BindingImport)).one()
        batches = session.exec(select(BindingImport).order_by(*order).offset(offset).limit(limit)).all()
        return [_summary_of(batch, batch, branches.get(batch.branch_id)) for batch in batches], total
    mine = BindingImportBranch.branch_id == actor.branch_scope
    total = session.exec(select(func.count()).select_from(BindingImportBranch).where(mine)).one()
    pairs = session.exec(select(BindingImport, BindingImportBranch)
                         .join(BindingImportBranch, col(BindingImportBranch.import_id) == BindingImport.id)
                         .where(mine).order_by(*order).offset(offset).limit(limit)).all()
    return [_summary_of(batch, figures, branches.get(actor.branch_scope)) for batch, figures in pairs], total


def _summary_of(batch: BindingImport, figures: BindingImport | BindingImportBranch,
                branch: Branch | None) -> ImportSummary:
    return ImportSummary(batch.id, batch.committed_at, batch.uploaded_by_name, branch.code if branch else None,
                         branch.name if branch else None, batch.filename, figures.total_rows, figures.new_count,
                         figures.changed_count, figures.unchanged_count, figures.warning_count,
                         figures.accounts_created)


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
    """One page of a batch's rows and what each did; a scoped actor sees the
    own branch's rows of a batch that touched it."""
    require(actor, Capability.upload_bindings)
    batch = session.get(BindingImport, import_id)
    if batch is None:
        raise NotFound()
    conditions = [BindingImportRow.import_id == import_id]
    if actor.branch_scope is not None:
        if session.get(BindingImportBranch, (import_id, actor.branch_scope)) is None:
            raise PermissionDenied("error.branch_out_of_scope")
        conditions.append(BindingImportRow.branch_id == actor.branch_scope)
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

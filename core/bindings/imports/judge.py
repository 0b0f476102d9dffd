"""Judging every row of a binding sheet against the database: the preview, and
the state it rests on (read again and compared by the commit)."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Row, func
from sqlmodel import Session, col, select

from core.auth.permissions import Actor, Capability, require
from core.bindings.imports import known_accounts, standby_column
from core.bindings.imports.history import ImportSummary, _find_import, _summary
from core.bindings.imports.read import LABELS, REQUIRED_VALUES, ParsedSheet, RowIssue, _gc_paused
from core.directory import known_members
from core.directory.accounts import is_valid_userid
from core.directory.known_members import NOT_CONFIGURED, CheckState, MemberCheck
from core.sheets import SheetRow
from db.fastsql import one_of
from db.models import Account, AccountStatus, Binding, Branch, ImportRowOutcome, Store, StoreStatus
from db.typed import select_columns, table_of

ERROR = "error"  # a row status beside the ImportRowOutcome values



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
    # Whether WeCom knows the accounts; `unreachable` asks the operator to go on unchecked.
    member_check: MemberCheck = NOT_CONFIGURED

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
    def members_unchecked(self) -> bool:
        """WeCom could not be asked: committing needs the operator's word that it may go on."""
        return self.member_check.state == CheckState.unreachable

    @property
    def repeats_earlier_import(self) -> bool:
        """The same file was committed before and would change nothing now."""
        return self.already_imported is not None and not self.changes_something


def upload_branch(*, actor: Actor, branch_id: int | None) -> int | None:
    """The branch an upload is for: a scoped actor's own branch, else the chosen one."""
    require(actor, Capability.upload_bindings, branch_id=branch_id)
    return actor.branch_scope if actor.branch_scope is not None else branch_id


# Plain rows (not ORM objects) are read here: at 50,000 rows building ORM
# instances alone would cost more than the whole benchmark budget.
_STORE = table_of(Store)
_BINDING = table_of(Binding)
_ACCOUNT = table_of(Account)
_BOUND_ACCOUNT = _ACCOUNT.alias("bound_account")
_BOUND_STORE = _STORE.alias("bound_store")


def _store_rows(session: Session, crm_ids: list[str], lock: bool) -> Sequence[Row]:
    """The file's stores, each with its current binding and that binding's account."""
    query = (select_columns(_STORE.c.id, _STORE.c.crm_store_id, _STORE.c.name, _STORE.c.branch_id,
                            _STORE.c.status, _STORE.c.version, _BINDING.c.id.label("binding_id"),
                            _BINDING.c.account_id.label("bound_account_id"),
                            _BINDING.c.version.label("binding_version"), _BINDING.c.shown.label("binding_shown"),
                            _BOUND_ACCOUNT.c.userid.label("bound_userid"))
             .select_from(_STORE.outerjoin(_BINDING, (_BINDING.c.store_id == _STORE.c.id)
                                           & _BINDING.c.ended_at.is_(None))
                          .outerjoin(_BOUND_ACCOUNT, _BOUND_ACCOUNT.c.id == _BINDING.c.account_id))
             .where(one_of(session.connection(), _STORE.c.crm_store_id, crm_ids))
             .order_by(_STORE.c.id))
    if lock:
        # PostgreSQL: hold the affected stores until the commit ends (SQLite already
        # serialises writers, and the commit takes the write lock first).
        query = query.with_for_update(of=_STORE)
    return session.execute(query).all()


def _account_rows(session: Session, userids: list[str]) -> Sequence[Row]:
    """The accounts the file names (by lower-cased userid: userids are
    case-insensitive unique), each with the store it is current for."""
    query = (select_columns(_ACCOUNT.c.id, _ACCOUNT.c.userid, _ACCOUNT.c.status, _BINDING.c.id.label("binding_id"),
                            _BINDING.c.store_id.label("bound_store_id"), _BINDING.c.version.label("binding_version"),
                            _BOUND_STORE.c.crm_store_id.label("bound_crm_store_id"),
                            _BOUND_STORE.c.name.label("bound_store_name"))
             .select_from(_ACCOUNT.outerjoin(_BINDING, (_BINDING.c.account_id == _ACCOUNT.c.id)
                                             & _BINDING.c.ended_at.is_(None))
                          .outerjoin(_BOUND_STORE, _BOUND_STORE.c.id == _BINDING.c.store_id))
             .where(one_of(session.connection(), func.lower(_ACCOUNT.c.userid), userids))
             .order_by(_ACCOUNT.c.id))
    return session.execute(query).all()


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
    standby: standby_column.StandbyState


def _load(session: Session, actor: Actor, branch_id: int | None, values: list[dict[str, str]],
          lock: bool) -> _Snapshot:
    branches = session.execute(select(Branch.id, Branch.code).order_by(col(Branch.id))).all()
    store_rows = _store_rows(session, sorted({v["crm_store_id"] for v in values if v.get("crm_store_id")}), lock)
    named = {v["wecom_userid"].lower() for v in values if v.get("wecom_userid")} | standby_column.all_userids(values)
    account_rows = _account_rows(session, sorted(named))
    standby = standby_column.load(session, [s.id for s in store_rows], named)
    # Who judges for which branch, the branches, each affected store (version,
    # status, branch, current binding and its version) and each named account
    # (status, current binding and its version): equal lists at commit mean
    # the preview's judgement still holds.
    basis = ((actor.role.value, actor.branch_scope, branch_id), [tuple(b) for b in branches],
             [tuple(s) for s in store_rows], [tuple(a) for a in account_rows], standby.basis)
    return _Snapshot({code: branch for branch, code in branches}, {s.crm_store_id: s for s in store_rows},
                     {a.userid.lower(): a for a in account_rows}, basis, standby)


def _judge(actor: Actor, parsed: ParsedSheet, branch_id: int | None, snap: _Snapshot,
           member_check: MemberCheck = NOT_CONFIGURED) -> list[PreviewRow]:
    rows = [PreviewRow(r, r.values) for r in parsed.rows]
    for sheet_row, row in zip(parsed.rows, rows, strict=True):
        _file_checks(sheet_row, row)
        row.errors.extend(standby_column.file_issues(row.values))
    _duplicates(rows)
    for index, issues in standby_column.duplicate_issues([r.values for r in rows]).items():
        rows[index].errors.extend(issues)
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
        row.errors.extend(standby_column.row_issues(v, store, snap.accounts, snap.standby))
        row.errors.extend(known_accounts.member_issues(v, member_check))
        if row.errors:
            row.status = ERROR
            continue
        assert store is not None  # a row without errors names a known store
        if store.binding_id is None:
            row.status = ImportRowOutcome.new.value
        elif account is not None and store.bound_account_id == account.id:
            # Only the standby list changes: counted as changed, the binding stays.
            changes_standby = standby_column.changes_list(v, store.id, snap.standby)
            row.status = (ImportRowOutcome.changed if changes_standby else ImportRowOutcome.unchanged).value
        else:
            row.status = ImportRowOutcome.changed.value
            row.previous_userid = store.bound_userid
    return rows


def preview(*, session: Session, actor: Actor, parsed: ParsedSheet, branch_id: int | None = None,
            member_check: MemberCheck | None = None) -> Preview:
    """Judge every row against the database and WeCom's members (`member_check`, by
    default asked of the configured WeCom app); nothing is written."""
    branch_id = upload_branch(actor=actor, branch_id=branch_id)
    if member_check is None:
        member_check = known_members.check_userids(known_accounts.sheet_userids(r.values for r in parsed.rows))
    with _gc_paused:
        snap = _load(session, actor, branch_id, [r.values for r in parsed.rows], lock=False)
        rows = _judge(actor, parsed, branch_id, snap, member_check)
    result = Preview(parsed=parsed, branch_id=branch_id, rows=rows, basis=snap.basis,
                     branch_ids=sorted({snap.stores[r.values["crm_store_id"]].branch_id
                                        for r in rows if r.status != ERROR}), member_check=member_check)
    earlier = _find_import(session, parsed.sha256)
    if earlier is not None:
        result.already_imported = _summary(session, earlier)
    return result

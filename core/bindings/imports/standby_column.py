"""The binding sheet's 备用企微账号 column: each row's standby accounts, in order.

When the file has the column, each row states its store's whole list (a blank
cell: none); without it the lists are left as they are. A standby account is
reserved for one store: one that serves a store, is reserved for another store,
is named by two rows, or is the row's own account is a row error. The commit
replaces the lists of the rows that change them, creating unknown accounts as
`standby`, in the sheet's one transaction.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, func, update
from sqlmodel import Session, col

from core import audit
from core.auth.permissions import Actor
from core.bindings.imports.known_accounts import STANDBY_KEY
from core.bindings.imports.read import RowIssue
from core.bindings.standby import parse_userids
from core.directory.accounts import is_valid_userid
from db.fastsql import insert_many, one_of
from db.models import Account, AccountStatus, StandbyAccount, Store
from db.typed import select_columns, table_of

_STANDBY = table_of(StandbyAccount)


def named(values: dict[str, str]) -> list[str] | None:
    """The row's standby userids, or None when the file has no such column."""
    text = values.get(STANDBY_KEY)
    if text is None:
        return None
    return parse_userids(text) if text else []


def all_userids(rows: Sequence[dict[str, str]]) -> set[str]:
    """Every standby userid the file names, lower-cased."""
    return {userid.lower() for values in rows for userid in (named(values) or [])}


def file_issues(values: dict[str, str]) -> list[RowIssue]:
    """What the cell alone says: bad userids, one named twice, the row's own account."""
    userids = named(values) or []
    issues: list[RowIssue] = []
    seen: set[str] = set()
    own = values.get("wecom_userid", "").lower()
    for userid in userids:
        if not is_valid_userid(userid):
            issues.append(RowIssue("binding_import.row.bad_standby_userid", {"userid": userid[:80]}))
        elif userid.lower() in seen:
            issues.append(RowIssue("binding_import.row.standby_twice", {"userid": userid}))
        elif userid.lower() == own:
            issues.append(RowIssue("binding_import.row.standby_is_own", {"userid": userid}))
        seen.add(userid.lower())
    return issues


def duplicate_issues(rows: Sequence[dict[str, str]]) -> dict[int, list[RowIssue]]:
    """By row index: a standby named by another row too, as its standby or as its account."""
    lists = [(index, {u.lower() for u in cell}) for index, values in enumerate(rows) if (cell := named(values))]
    if not lists:
        return {}
    standby_rows: dict[str, list[int]] = defaultdict(list)
    for index, lowered in lists:
        for userid in lowered:
            standby_rows[userid].append(index)
    current = {values["wecom_userid"].lower() for values in rows if values.get("wecom_userid")}
    issues: dict[int, list[RowIssue]] = defaultdict(list)
    for userid, indexes in standby_rows.items():
        for index in indexes:
            if len(indexes) > 1:
                issues[index].append(RowIssue("binding_import.row.standby_two_stores", {"userid": userid}))
            if userid in current:
                issues[index].append(RowIssue("binding_import.row.standby_bound_in_file", {"userid": userid}))
    return issues


@dataclass
class StandbyState:
    """The standby lists the judgement rests on."""
    lists: dict[int, list[str]]          # store id → its standby userids (lower-cased), in order
    reserved: dict[str, tuple[int, str]]  # lower-cased userid → (store id, CRM store ID) it is reserved for

    @property
    def basis(self) -> tuple:
        return tuple(sorted(self.lists.items())), tuple(sorted(self.reserved.items()))


def load(session: Session, store_ids: list[int], userids: set[str]) -> StandbyState:
    """The file's stores' lists and the reservations of the accounts the file names."""
    lists: dict[int, list[str]] = {}
    reserved: dict[str, tuple[int, str]] = {}
    rows: Sequence[Row] = []
    if store_ids:
        rows = session.execute(
            select_columns(StandbyAccount.store_id, Account.userid)
            .join(Account, col(Account.id) == StandbyAccount.account_id)
            .where(one_of(session.connection(), col(StandbyAccount.store_id), store_ids))
            .order_by(col(StandbyAccount.store_id), col(StandbyAccount.position), col(StandbyAccount.id))).all()
    for store_id, userid in rows:
        lists.setdefault(store_id, []).append(userid.lower())
    if userids:
        for userid, store_id, crm_store_id in session.execute(
                select_columns(Account.userid, StandbyAccount.store_id, Store.crm_store_id)
                .join(StandbyAccount, col(StandbyAccount.account_id) == Account.id)
                .join(Store, col(Store.id) == StandbyAccount.store_id)
                .where(one_of(session.connection(), func.lower(col(Account.userid)), sorted(userids)))).all():
            reserved[userid.lower()] = (store_id, crm_store_id)
    return StandbyState(lists, reserved)


def row_issues(values: dict[str, str], store: Row | None, accounts: dict[str, Row],
               state: StandbyState) -> list[RowIssue]:
    """What the database says about the row's standby accounts and its own account."""
    issues: list[RowIssue] = []
    own = accounts.get(values.get("wecom_userid", "").lower())
    if own is not None and store is not None:
        held = state.reserved.get(own.userid.lower())
        if held is not None and held[0] != store.id:
            issues.append(RowIssue("binding_import.row.account_reserved",
                                   {"userid": own.userid, "store": held[1]}))
    for userid in named(values) or []:
        account = accounts.get(userid.lower())
        if account is None:
            continue
        if account.status == AccountStatus.disabled:
            issues.append(RowIssue("binding_import.row.standby_disabled", {"userid": account.userid}))
        if account.binding_id is not None and (store is None or account.bound_store_id != store.id):
            issues.append(RowIssue("binding_import.row.standby_in_use",
                                   {"userid": account.userid, "store": account.bound_crm_store_id}))
        held = state.reserved.get(userid.lower())
        if held is not None and (store is None or held[0] != store.id):
            issues.append(RowIssue("binding_import.row.standby_reserved", {"userid": account.userid,
                                                                           "store": held[1]}))
    return issues


def changes_list(values: dict[str, str], store_id: int, state: StandbyState) -> bool:
    wanted = named(values)
    return wanted is not None and [u.lower() for u in wanted] != state.lists.get(store_id, [])


def write(session: Session, actor: Actor, changes: list[tuple[Row, list[str]]], state: StandbyState,
          started_account_ids: set[int], account_ids: dict[str, int], now: datetime, import_id: int) -> None:
    """Replace the changed stores' lists (bulk statements, one bound parameter
    per id list). `account_ids`: every named account by lower-cased userid (new
    standby ones included). A store's standby that starts serving it leaves the
    list and becomes active; accounts taken off a list become active too."""
    connection = session.connection()
    store_ids = [store.id for store, _userids in changes]
    listed = {account_ids[u.lower()] for _store, userids in changes for u in userids}
    dropped = {account_ids[u] for store_id in store_ids for u in state.lists.get(store_id, [])
               if u in account_ids} - listed
    promoted = {account_ids[u] for u in state.reserved if u in account_ids} & started_account_ids
    if store_ids:
        connection.execute(_STANDBY.delete().where(one_of(connection, _STANDBY.c.store_id, store_ids)))
    if promoted:
        connection.execute(_STANDBY.delete().where(one_of(connection, _STANDBY.c.account_id, sorted(promoted))))
    insert_many(connection, _STANDBY, [
        {"store_id": store.id, "account_id": account_ids[userid.lower()], "position": position,
         "created_at": now, "created_by_id": actor.user_id}
        for store, userids in changes for position, userid in enumerate(userids)])
    if listed:
        session.exec(update(Account).where(one_of(connection, col(Account.id), sorted(listed)),
                                           col(Account.status) == AccountStatus.active)
                     .values(status=AccountStatus.standby.value, version=Account.version + 1, updated_at=now))
    if dropped | promoted:
        session.exec(update(Account).where(one_of(connection, col(Account.id), sorted(dropped | promoted)),
                                           col(Account.status) == AccountStatus.standby)
                     .values(status=AccountStatus.active.value, version=Account.version + 1, updated_at=now))
    audit.record_many(session=session, actor=actor, at=now, entries=[
        audit.Entry("standby.update", "store", store.crm_store_id, store.branch_id,
                    {"standby": state.lists.get(store.id, [])}, {"standby": userids, "import": import_id})
        for store, userids in changes])

"""企微账号 (WeCom members serving stores): lookup, creation, the account list,
and edits of capacity limit and status."""

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit, InvalidInput, NotFound, PermissionDenied
from base.timeutil import utcnow
from core import audit, settings_store
from core.auth.permissions import Actor, Capability, require
from core.conflicts import lock_for_write, settled_races
from core.import_runs import runs
from db.models import Account, AccountStatus, Binding, Store

# WeCom userid: 1–64 characters of A-Za-z0-9_-@. (case-insensitive unique).
USERID_RE = re.compile(r"^[A-Za-z0-9_\-@.]{1,64}$")


def is_valid_userid(userid: str) -> bool:
    return bool(USERID_RE.match(userid))


def find_account(*, session: Session, userid: str) -> Account | None:
    return session.exec(select(Account).where(func.lower(Account.userid) == userid.strip().lower())).first()


def create_account(*, session: Session, actor: Actor, userid: str, name: str,
                   status: AccountStatus = AccountStatus.active, branch_id: int | None = None) -> Account:
    """A new account with the configured default capacity limit."""
    userid = userid.strip()
    if not is_valid_userid(userid):
        raise InvalidInput("accounts.bad_userid", userid=userid)
    if find_account(session=session, userid=userid) is not None:
        raise InvalidInput("accounts.userid_taken", userid=userid)
    limit = settings_store.effective(session=session, key="capacity.default_limit")
    account = Account(userid=userid, name=name.strip()[:100], capacity_limit=limit, status=status.value)
    session.add(account)
    session.flush()
    audit.record(session=session, actor=actor, action="account.create", entity_type="account",
                 entity_id=userid, branch_id=branch_id,
                 after={"userid": userid, "name": account.name, "capacity_limit": limit, "status": status.value})
    return account


# The settings page allows the same bound for the default limit.
MAX_CAPACITY_LIMIT = 1_000_000


@dataclass(frozen=True)
class AccountFilter:
    status: str | None = None
    bound: bool | None = None            # has a current binding
    usage_at_least_pct: int | None = None
    search: str = ""                     # userid prefix or name


@dataclass(frozen=True)
class AccountRow:
    account_id: int
    version: int
    userid: str
    name: str
    status: str
    customer_count: int
    capacity_limit: int
    count_synced_at: datetime | None
    sync_error: str | None
    # Why the account was disabled for it (its WeCom member left or was disabled), as key + params.
    status_reason: str | None
    crm_store_id: str | None
    store_name: str | None
    branch_id: int | None

    @property
    def usage(self) -> float:
        return self.customer_count / self.capacity_limit if self.capacity_limit else 0.0

    @property
    def full(self) -> bool:
        return self.customer_count >= self.capacity_limit


def _row_query():
    current = (col(Binding.account_id) == Account.id) & col(Binding.ended_at).is_(None)
    return (
        select(Account.id, Account.version, Account.userid, Account.name, Account.status, Account.customer_count,
               Account.capacity_limit, Account.count_synced_at, Account.sync_error, Account.status_reason,
               Store.crm_store_id, Store.name, Store.branch_id)
        .select_from(Account)
        .join(Binding, current, isouter=True)
        .join(Store, col(Store.id) == Binding.store_id, isouter=True)
    )


def search_accounts(*, session: Session, actor: Actor, filters: AccountFilter, offset: int = 0,
                    limit: int = 50) -> tuple[list[AccountRow], int]:
    """One page of accounts with their count, limit and current store, fullest
    first, and the total. A branch-scoped reader sees the accounts serving its
    branch's stores only."""
    require(actor, Capability.view_directory)
    query = _row_query()
    conditions: list[ColumnElement[bool]] = []
    if actor.branch_scope is not None:
        conditions.append(col(Store.branch_id) == actor.branch_scope)
    if filters.status:
        conditions.append(col(Account.status) == filters.status)
    if filters.bound is True:
        conditions.append(col(Binding.id).is_not(None))
    elif filters.bound is False:
        conditions.append(col(Binding.id).is_(None))
    if filters.usage_at_least_pct is not None:
        conditions.append(col(Account.customer_count) * 100 >= col(Account.capacity_limit) * filters.usage_at_least_pct)
    term = filters.search.strip()
    if term:
        conditions.append(or_(func.lower(col(Account.userid)).startswith(term.lower(), autoescape=True),
                              col(Account.name).contains(term, autoescape=True)))
    query = query.where(*conditions)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    usage = col(Account.customer_count) * 1.0 / col(Account.capacity_limit)
    rows = session.exec(query.order_by(usage.desc(), Account.userid).offset(offset).limit(limit)).all()
    return [AccountRow(*row) for row in rows], total


def account_row(*, session: Session, actor: Actor, account_id: int) -> AccountRow:
    """One account as the list shows it, now (e.g. to reload an edit form
    after someone else saved first)."""
    require(actor, Capability.view_directory)
    row = session.exec(_row_query().where(col(Account.id) == account_id)).first()
    if row is None or (actor.branch_scope is not None and row[-1] != actor.branch_scope):
        raise NotFound()
    return AccountRow(*row)


def _account_branch(session: Session, account: Account) -> int | None:
    """The branch of the store the account currently serves, if any."""
    return session.exec(select(Store.branch_id).join(Binding, col(Binding.store_id) == Store.id)
                        .where(Binding.account_id == account.id, col(Binding.ended_at).is_(None))).first()


def last_branch_expr():
    """Per account row: the branch of the store of its latest binding, current
    or ended (NULL when it never served a store)."""
    return (
        select(Store.branch_id)
        .join(Binding, col(Binding.store_id) == Store.id)
        .where(col(Binding.account_id) == Account.id)
        .order_by(col(Binding.started_at).desc(), col(Binding.id).desc())
        .limit(1)
        .correlate(Account)
        .scalar_subquery()
    )


def last_branch(*, session: Session, account_id: int) -> int | None:
    return session.exec(select(last_branch_expr()).where(col(Account.id) == account_id)).first()


def _snapshot(account: Account) -> dict:
    values = {"userid": account.userid, "capacity_limit": account.capacity_limit, "status": account.status,
              "version": account.version}
    if account.status_reason:
        values["status_reason"] = account.status_reason
    return values


def update_account(*, session: Session, actor: Actor, account_id: int, expected_version: int,
                   capacity_limit: int, status: AccountStatus | str) -> Account:
    """Edit the capacity limit and status, refused when the account changed since
    `expected_version` was read. A disabled account stops serving its store (the
    entry rule hides it) and the store shows up under "needs action". A
    branch-scoped operator edits only accounts serving the branch's stores (the
    ones its account list shows)."""
    require(actor, Capability.manage_accounts)
    with settled_races():
        lock_for_write(session)
        # A binding sheet being written in chunks rests on the accounts' status as its preview read them.
        runs.refuse_binding_writes(session)
        account = session.get(Account, account_id, populate_existing=True)
        if account is None:
            raise NotFound()
        branch_id = _account_branch(session, account)
        if actor.branch_scope is not None and branch_id != actor.branch_scope:
            raise PermissionDenied("error.branch_out_of_scope")
        return _update(session, actor, account, branch_id, expected_version, capacity_limit, status)


def _update(session: Session, actor: Actor, account: Account, branch_id: int | None, expected_version: int,
            capacity_limit: int, status: AccountStatus | str) -> Account:
    try:
        status = AccountStatus(status)
    except ValueError:
        raise InvalidInput("accounts.bad_status", status=status) from None
    if not isinstance(capacity_limit, int) or not 1 <= capacity_limit <= MAX_CAPACITY_LIMIT:
        raise InvalidInput("accounts.bad_capacity_limit", maximum=MAX_CAPACITY_LIMIT)
    if account.version != expected_version:
        raise ConcurrentEdit("accounts.changed_meanwhile", account=account.userid)
    if account.capacity_limit == capacity_limit and account.status == status:
        return account
    # The reason belongs to the status it explains: an operator's new status has none.
    reason = account.status_reason if account.status == status else None
    return _write(session, actor, account, branch_id, capacity_limit=capacity_limit, status=status.value,
                  status_reason=reason)


def set_status(*, session: Session, actor: Actor, account: Account, status: AccountStatus,
               branch_id: int | None = None, reason: str | None = None) -> Account:
    """Change only the status (e.g. a standby account taking over a store), with
    why (`reason`, key + params; e.g. its member left WeCom)."""
    require(actor, Capability.manage_accounts, branch_id=branch_id)
    if account.status == status:
        return account
    return _write(session, actor, account, branch_id, capacity_limit=account.capacity_limit, status=status.value,
                  status_reason=reason)


def _write(session: Session, actor: Actor, account: Account, branch_id: int | None, **values) -> Account:
    before = _snapshot(account)
    result = session.exec(
        update(Account)
        .where(col(Account.id) == account.id, col(Account.version) == account.version)
        .values(**values, version=account.version + 1, updated_at=utcnow())
    )
    if result.rowcount != 1:
        raise ConcurrentEdit("accounts.changed_meanwhile", account=account.userid)
    session.refresh(account)
    audit.record(session=session, actor=actor, action="account.update", entity_type="account",
                 entity_id=account.userid, branch_id=branch_id, before=before, after=_snapshot(account))
    return account

"""Standby accounts (备用号): accounts reserved for one store, in order, and the
one way a store moves to another account behind its contact code.

HQ edits a store's list on the bindings page (against the list it was shown)
and branches name it in the binding sheet. A store moves (`move_store`) when its
current account reaches the switch level (the sidecar), when its member leaves,
or when an operator replaces the account (换号): the old binding ends
`replaced`, the new one starts with the old entry flag kept, the account taken
off the list becomes active, the switch is recorded, and the contact codes are
synced so that the same QR code now serves the new account.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit, InvalidInput, NotFound
from base.timeutil import utcnow
from core import audit, settings_store
from core.auth.permissions import Actor, Capability, require
from core.bindings import service as bindings
from core.codes.service import request_code_sync
from core.conflicts import lock_for_write, settled_races
from core.directory import accounts
from core.import_runs import runs
from db.fastsql import one_of
from db.models import (
    Account,
    AccountStatus,
    AccountSwitch,
    Binding,
    BindingEndReason,
    StandbyAccount,
    Store,
    SwitchReason,
    User,
)
from db.typed import select_columns

# The sheet's and the page's separators: , ， ; ； 、 and line breaks.
SEPARATORS = re.compile(r"[,，;；、\r\n]+")
# More would never be used before someone looks at the store again.
MAX_STANDBY = 10


def parse_userids(text: str) -> list[str]:
    """The userids of a 备用企微账号 cell or field, in order, blanks dropped."""
    return [part.strip() for part in SEPARATORS.split(text or "") if part.strip()]


@dataclass(frozen=True)
class StandbyRow:
    account_id: int
    userid: str
    name: str
    status: str
    customer_count: int
    capacity_limit: int
    position: int

    @property
    def usage_pct(self) -> float:
        return 100.0 * self.customer_count / self.capacity_limit if self.capacity_limit else 0.0


def standby_lists(*, session: Session, store_ids: list[int]) -> dict[int, list[StandbyRow]]:
    """Each store's standby accounts in order (stores without any are left out)."""
    if not store_ids:
        return {}
    rows = session.exec(
        select_columns(StandbyAccount.store_id, Account.id, Account.userid, Account.name, Account.status,
                       Account.customer_count, Account.capacity_limit, StandbyAccount.position)
        .join(Account, col(Account.id) == StandbyAccount.account_id)
        .where(one_of(session.connection(), col(StandbyAccount.store_id), store_ids))
        .order_by(col(StandbyAccount.store_id), col(StandbyAccount.position), col(StandbyAccount.id))).all()
    lists: dict[int, list[StandbyRow]] = {}
    for store_id, *values in rows:
        lists.setdefault(store_id, []).append(StandbyRow(*values))
    return lists


def standby_for_stores(*, session: Session, actor: Actor, store_ids: list[int]) -> dict[int, list[StandbyRow]]:
    """The lists of the stores a page shows (a branch-scoped reader gets its branch's only)."""
    require(actor, Capability.view_directory)
    if actor.branch_scope is not None:
        store_ids = [store_id for store_id in session.exec(select(Store.id).where(
            one_of(session.connection(), col(Store.id), store_ids), col(Store.branch_id) == actor.branch_scope)).all()
                     if store_id is not None]
    return standby_lists(session=session, store_ids=store_ids)


def store_standby(*, session: Session, actor: Actor, store_id: int) -> list[StandbyRow]:
    """A store's standby accounts as the bindings page lists them."""
    store = _visible_store(session, actor, store_id)
    assert store.id is not None  # a loaded row has its key
    return standby_lists(session=session, store_ids=[store.id]).get(store.id, [])


def _visible_store(session: Session, actor: Actor, store_id: int) -> Store:
    require(actor, Capability.view_directory)
    store = session.get(Store, store_id)
    if store is None:
        raise NotFound()
    require(actor, Capability.view_directory, branch_id=store.branch_id)
    return store


def set_standby(*, session: Session, actor: Actor, store_id: int, expected: list[int],
                userids: list[str]) -> list[StandbyRow]:
    """Replace a store's standby list with `userids`, in that order, refused
    (ConcurrentEdit) when the list changed since the operator saw `expected`
    (account ids in order). Unknown userids become new standby accounts; an
    account taken off the list is no longer reserved and becomes active
    (unbound, still listed). The caller commits."""
    require(actor, Capability.review_entries)
    cleaned = [userid.strip() for userid in userids if userid.strip()]
    with settled_races("standby.taken_meanwhile"):
        lock_for_write(session)
        runs.refuse_binding_writes(session)
        store = session.exec(select(Store).where(col(Store.id) == store_id).with_for_update()
                             .execution_options(populate_existing=True)).first()
        if store is None:
            raise NotFound()
        assert store.id is not None  # a loaded row has its key
        require(actor, Capability.review_entries, branch_id=store.branch_id)
        before = standby_lists(session=session, store_ids=[store.id]).get(store.id, [])
        if [row.account_id for row in before] != list(expected):
            raise ConcurrentEdit("standby.changed_meanwhile", store=store.crm_store_id)
        wanted = _check_userids(session, store, cleaned)
        _write_list(session, actor, store, wanted, before)
        session.flush()
        return standby_lists(session=session, store_ids=[store.id]).get(store.id, [])


def _check_userids(session: Session, store: Store, userids: list[str]) -> list[Account | str]:
    """The accounts the list names (a str for a userid to create), or InvalidInput naming the first problem."""
    if len(userids) > MAX_STANDBY:
        raise InvalidInput("standby.too_many", maximum=MAX_STANDBY)
    seen: set[str] = set()
    current = bindings.current_for_store(session=session, store_id=store.id) if store.id is not None else None
    wanted: list[Account | str] = []
    for userid in userids:
        if not accounts.is_valid_userid(userid):
            raise InvalidInput("standby.bad_userid", userid=userid[:80])
        if userid.lower() in seen:
            raise InvalidInput("standby.duplicate", userid=userid)
        seen.add(userid.lower())
        account = accounts.find_account(session=session, userid=userid)
        if account is None:
            wanted.append(userid)
            continue
        assert account.id is not None  # a loaded row has its key
        if current is not None and current.account_id == account.id:
            raise InvalidInput("standby.is_current", userid=account.userid)
        if account.status == AccountStatus.disabled:
            raise InvalidInput("standby.disabled", userid=account.userid)
        elsewhere = bindings.current_for_account(session=session, account_id=account.id)
        if elsewhere is not None:
            other = session.get_one(Store, elsewhere.store_id)
            raise InvalidInput("standby.current_elsewhere", userid=account.userid, store=other.crm_store_id)
        refuse_if_reserved_elsewhere(session=session, account=account, store=store)
        wanted.append(account)
    return wanted


def refuse_if_reserved_elsewhere(*, session: Session, account: Account, store: Store) -> None:
    """An account reserved as another store's standby serves no one else."""
    reserved = session.exec(select(StandbyAccount.store_id).where(
        col(StandbyAccount.account_id) == account.id, col(StandbyAccount.store_id) != store.id)).first()
    if reserved is not None:
        other = session.get_one(Store, reserved)
        raise InvalidInput("standby.reserved_elsewhere", userid=account.userid, store=other.crm_store_id)


def _write_list(session: Session, actor: Actor, store: Store, wanted: list[Account | str],
                before: list[StandbyRow]) -> None:
    assert store.id is not None  # a loaded row has its key
    now = utcnow()
    resolved: list[Account] = []
    for item in wanted:
        if isinstance(item, str):
            resolved.append(accounts.create_account(session=session, actor=actor, userid=item, name=item,
                                                    status=AccountStatus.standby, branch_id=store.branch_id))
        else:
            if item.status != AccountStatus.standby:
                accounts.set_status(session=session, actor=actor, account=item, status=AccountStatus.standby,
                                    branch_id=store.branch_id)
            resolved.append(item)
    kept = {account.id for account in resolved}
    for row in before:
        if row.account_id not in kept and row.status == AccountStatus.standby:
            # No longer reserved: an ordinary unbound account, free for 换号 or a sheet.
            accounts.set_status(session=session, actor=actor, account=session.get_one(Account, row.account_id),
                                status=AccountStatus.active, branch_id=store.branch_id)
    session.exec(delete(StandbyAccount).where(col(StandbyAccount.store_id) == store.id))
    session.flush()
    for position, account in enumerate(resolved):
        assert account.id is not None  # created or loaded: flushed
        session.add(StandbyAccount(store_id=store.id, account_id=account.id, position=position, created_at=now,
                                   created_by_id=actor.user_id))
    after = [account.userid for account in resolved]
    if after != [row.userid for row in before]:
        audit.record(session=session, actor=actor, action="standby.update", entity_type="store",
                     entity_id=store.crm_store_id, branch_id=store.branch_id,
                     before={"standby": [row.userid for row in before]}, after={"standby": after})


def usable_standby(*, session: Session, store_id: int) -> Account | None:
    """The first of the store's standby accounts that can take over: standby
    (not disabled, not serving a store) and below its own warn level, since a
    standby that already holds many customers would fill up soon after."""
    warn = settings_store.effective(session=session, key="capacity.warn_pct")
    serving = select(Binding.account_id).where(col(Binding.ended_at).is_(None))
    return session.exec(
        select(Account)
        .join(StandbyAccount, col(StandbyAccount.account_id) == Account.id)
        .where(col(StandbyAccount.store_id) == store_id, col(Account.status) == AccountStatus.standby,
               col(Account.id).not_in(serving),
               col(Account.customer_count) * 100 < col(Account.capacity_limit) * warn)
        .order_by(col(StandbyAccount.position), col(StandbyAccount.id))
        .limit(1)).first()


def switch_ready(*, session: Session, actor: Actor, account_ids: list[int]) -> dict[int, bool]:
    """For each of these accounts that serves a store now: whether the store has
    a standby able to take over (可自动换号) or not (无备用号)."""
    require(actor, Capability.view_directory)
    warn = settings_store.effective(session=session, key="capacity.warn_pct")
    spare = aliased(Account)
    serving = select(Binding.account_id).where(col(Binding.ended_at).is_(None))
    usable = (select(StandbyAccount.id)
              .join(spare, col(spare.id) == StandbyAccount.account_id)
              .where(col(StandbyAccount.store_id) == Binding.store_id, col(spare.status) == AccountStatus.standby,
                     col(spare.id).not_in(serving), col(spare.customer_count) * 100 < col(spare.capacity_limit) * warn)
              .exists())
    rows = session.exec(select(Binding.account_id, usable)
                        .where(col(Binding.ended_at).is_(None),
                               one_of(session.connection(), col(Binding.account_id), account_ids))).all()
    return {account_id: bool(ready) for account_id, ready in rows}


@dataclass(frozen=True)
class Moved:
    binding: Binding
    switch: AccountSwitch


def move_store(*, session: Session, actor: Actor, store: Store, binding: Binding, expected_version: int,
               account: Account, reason: SwitchReason, shown: bool, reviewed: bool,
               now: datetime | None = None) -> Moved:
    """Move the store from its current binding to `account`: the binding ends
    `replaced` (compare-and-set on `expected_version`, so of two sidecars or
    operators racing only one moves it), the new binding starts with `shown`,
    the account becomes active and leaves the standby list, and the switch is
    recorded with the old account's usage. The old account stays listed
    (active, unbound). The contact codes follow at their next sync, queued
    here. The caller holds the write lock and commits."""
    assert store.id is not None and account.id is not None  # loaded rows have their keys
    now = now or utcnow()
    binding_shown = binding.shown
    old_account = session.get_one(Account, binding.account_id)
    assert binding.id is not None and old_account.id is not None  # loaded rows have their keys
    if account.status != AccountStatus.active:
        accounts.set_status(session=session, actor=actor, account=account, status=AccountStatus.active,
                            branch_id=store.branch_id)
    bindings.end_binding(session=session, actor=actor, binding=binding, reason=BindingEndReason.replaced,
                         expected_version=expected_version)
    session.exec(delete(StandbyAccount).where(col(StandbyAccount.account_id) == account.id))
    new = bindings.start_binding(session=session, actor=actor, store=store, account=account, shown=shown,
                                 reviewed=reviewed)
    assert new.id is not None  # assigned when it started
    usage = 100.0 * old_account.customer_count / old_account.capacity_limit if old_account.capacity_limit else 0.0
    switch = AccountSwitch(store_id=store.id, from_account_id=old_account.id, to_account_id=account.id,
                           from_binding_id=binding.id, to_binding_id=new.id, reason=reason.value,
                           usage_pct=round(usage, 1), customer_count=old_account.customer_count,
                           capacity_limit=old_account.capacity_limit, actor_id=actor.user_id,
                           actor_name=actor.name[:64], switched_at=now)
    session.add(switch)
    audit.record(session=session, actor=actor,
                 action="binding.replace" if reason == SwitchReason.replaced else "binding.switch",
                 entity_type="store", entity_id=store.crm_store_id, branch_id=store.branch_id,
                 before={"account": old_account.userid, "shown": binding_shown, "binding": binding.id,
                         "usage_pct": round(usage, 1)},
                 after={"account": account.userid, "shown": shown, "binding": new.id, "reason": reason.value})
    request_code_sync(session=session)
    session.flush()
    return Moved(new, switch)


@dataclass(frozen=True)
class SwitchRow:
    switched_at: datetime
    reason: str
    from_userid: str
    from_name: str
    to_userid: str
    to_name: str
    usage_pct: float
    customer_count: int
    capacity_limit: int
    actor: str


def switch_history(*, session: Session, actor: Actor, store_id: int) -> list[SwitchRow]:
    """Every account switch of the store, newest first."""
    store = _visible_store(session, actor, store_id)
    old, new, user = aliased(Account), aliased(Account), aliased(User)
    rows = session.exec(
        select_columns(AccountSwitch.switched_at, AccountSwitch.reason, old.userid, old.name, new.userid, new.name,
                       AccountSwitch.usage_pct, AccountSwitch.customer_count, AccountSwitch.capacity_limit,
                       func.coalesce(user.username, AccountSwitch.actor_name))
        .join(old, col(old.id) == AccountSwitch.from_account_id)
        .join(new, col(new.id) == AccountSwitch.to_account_id)
        .join(user, col(user.id) == AccountSwitch.actor_id, isouter=True)
        .where(col(AccountSwitch.store_id) == store.id)
        .order_by(col(AccountSwitch.switched_at).desc(), col(AccountSwitch.id).desc())).all()
    return [SwitchRow(*row) for row in rows]

"""Store ↔ account bindings: the one definition of starting and ending them
(sheet commit, review, replace, unbind, store closing), the audit snapshot of a
binding, and what "bound" means. The database's partial unique indexes are the
last word on "one current binding per store / per account"; the single-row
functions check first so that users get a clear reason instead of an error."""

from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple

from sqlalchemy import bindparam, exists, func
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit, InvalidInput
from base.timeutil import utcnow
from core import audit
from core.auth.permissions import Actor
from db.fastsql import insert_many
from db.models import Account, Binding, BindingEndReason, Store, StoreStatus
from db.typed import table_of

# Plain rows, not ORM objects: a sheet commit starts and ends tens of thousands at once.
_BINDING = table_of(Binding)


def store_is_bound() -> ColumnElement[bool]:
    """A store (the `Store` of the enclosing query) is bound while it has a
    current binding, whatever its account's status. Migration 0006's triggers
    keep `branch_binding_stats` by this rule; tests/core/bindings/test_bound.py
    holds them to it."""
    return exists().where(col(Binding.store_id) == Store.id, col(Binding.ended_at).is_(None))


def counts_as_bound() -> ColumnElement[bool]:
    """What the binding rate counts (bound open stores ÷ open stores): an open store that is bound."""
    return (col(Store.status) == StoreStatus.open) & store_is_bound()


def current_for_store(*, session: Session, store_id: int) -> Binding | None:
    return session.exec(select(Binding).where(Binding.store_id == store_id, col(Binding.ended_at).is_(None))).first()


def current_for_account(*, session: Session, account_id: int) -> Binding | None:
    return session.exec(select(Binding).where(Binding.account_id == account_id,
                                              col(Binding.ended_at).is_(None))).first()


class _Unread(Enum):
    unread = "unread"


# A field the writer did not read: left out of the audit entry rather than guessed.
UNREAD = _Unread.unread


def snapshot(*, store: str, account: str, shown: bool, current: bool, end_reason: str | None | _Unread = UNREAD,
             reviewed: bool | _Unread = UNREAD, import_id: int | None = None) -> dict[str, Any]:
    """A binding as its audit entries show it (before and after): the store's
    CRM ID, the account's userid, the operator's flag, whether it is current,
    its end reason and review state, and the sheet import that wrote it."""
    values: dict[str, Any] = {"store": store, "account": account, "shown": shown, "current": current}
    if end_reason is not UNREAD:
        values["end_reason"] = end_reason
    if reviewed is not UNREAD:
        values["reviewed"] = reviewed
    if import_id is not None:
        values["import"] = import_id
    return values


class Start(NamedTuple):
    """A binding to start, with what its audit entry names."""
    store_id: int
    account_id: int
    branch_id: int
    crm_store_id: str
    userid: str
    shown: bool = False
    reviewed: bool = False


class End(NamedTuple):
    """A current binding to end, at the version the caller read, with what its audit entry names."""
    binding_id: int
    version: int
    branch_id: int
    crm_store_id: str
    userid: str
    shown: bool
    reviewed: bool | None = None   # None: not read (a sheet's judgement does not read it)


def start_many(*, session: Session, actor: Actor, starts: list[Start], at: datetime,
               import_id: int | None = None) -> dict[int, int]:
    """Start bindings in one bulk INSERT, each with its audit entry; returns
    the new binding's id per store id. A new binding starts hidden and waits
    for review (绑定后默认不显示) unless its start says it was shown and
    reviewed. A store or account with a current binding already fails on the
    partial unique indexes (IntegrityError)."""
    if not starts:
        return {}
    # Pending ORM writes (an account just created, their audit entries) go in first, in order.
    session.flush()
    before = session.execute(select(func.max(_BINDING.c.id))).scalar() or 0
    insert_many(session.connection(), _BINDING, [
        {"store_id": s.store_id, "account_id": s.account_id, "shown": s.shown, "started_at": at,
         "created_by_id": actor.user_id, "reviewed_at": at if s.reviewed else None,
         "reviewed_by_id": actor.user_id if s.reviewed else None, "ended_at": None, "end_reason": None,
         "ended_by_id": None, "version": 1, "updated_at": at}
        for s in starts])
    # Read the new ids back (RETURNING with executemany runs row by row on SQLite).
    started = dict(session.execute(select(_BINDING.c.store_id, _BINDING.c.id)
                                   .where(_BINDING.c.id > before, _BINDING.c.ended_at.is_(None))).all())
    # A sheet import's entries have always named the import instead of the (empty) end reason.
    end_reason = UNREAD if import_id is not None else None
    audit.record_many(session=session, actor=actor, at=at, entries=[
        audit.Entry("binding.start", "binding", started[s.store_id], s.branch_id, None,
                    snapshot(store=s.crm_store_id, account=s.userid, shown=s.shown, current=True,
                             end_reason=end_reason, reviewed=s.reviewed, import_id=import_id))
        for s in starts])
    return started


def end_many(*, session: Session, actor: Actor, ends: list[End], reason: BindingEndReason, at: datetime,
             import_id: int | None = None) -> None:
    """End current bindings with `reason`, each with its audit entry. The entry
    hides (shown false). Compare-and-set: refused as a whole (ConcurrentEdit)
    when any binding ended or changed since its version was read; the caller
    rolls back."""
    if not ends:
        return
    session.flush()
    result = session.connection().execute(
        _BINDING.update()
        .where(_BINDING.c.id == bindparam("b_id"), _BINDING.c.version == bindparam("b_version"),
               _BINDING.c.ended_at.is_(None))
        .values(ended_at=at, end_reason=reason.value, ended_by_id=actor.user_id, shown=False,
                version=bindparam("b_next"), updated_at=at),
        [{"b_id": e.binding_id, "b_version": e.version, "b_next": e.version + 1} for e in ends])
    if result.rowcount != len(ends):
        if len(ends) == 1:
            raise ConcurrentEdit("bindings.changed_meanwhile", store=ends[0].crm_store_id)
        raise ConcurrentEdit("bindings.changed_during_save")
    # A sheet import's "before" has always named neither end reason nor review state.
    current_reason = UNREAD if import_id is not None else None
    audit.record_many(session=session, actor=actor, at=at, entries=[
        audit.Entry("binding.end", "binding", e.binding_id, e.branch_id,
                    snapshot(store=e.crm_store_id, account=e.userid, shown=e.shown, current=True,
                             end_reason=current_reason, reviewed=UNREAD if e.reviewed is None else e.reviewed),
                    snapshot(store=e.crm_store_id, account=e.userid, shown=False, current=False,
                             end_reason=reason.value, reviewed=UNREAD if e.reviewed is None else e.reviewed,
                             import_id=import_id))
        for e in ends])


def start_binding(*, session: Session, actor: Actor, store: Store, account: Account, shown: bool = False,
                  reviewed: bool = False) -> Binding:
    """Bind a store to an account (see start_many), refused with the reason
    when the store or the account has a current binding."""
    assert store.id is not None and account.id is not None  # loaded rows have their keys
    if current_for_store(session=session, store_id=store.id) is not None:
        raise InvalidInput("bindings.store_already_bound", store=store.crm_store_id)
    other = current_for_account(session=session, account_id=account.id)
    if other is not None:
        other_store = session.get(Store, other.store_id)
        raise InvalidInput("bindings.account_in_use", account=account.userid,
                           store=other_store.crm_store_id if other_store else "")
    started = start_many(session=session, actor=actor, at=utcnow(), starts=[
        Start(store.id, account.id, store.branch_id, store.crm_store_id, account.userid, shown, reviewed)])
    return session.get_one(Binding, started[store.id])


def end_binding(*, session: Session, actor: Actor, binding: Binding, reason: BindingEndReason,
                expected_version: int | None = None) -> Binding:
    """End a current binding with its reason (see end_many); refuses when the
    binding changed since `expected_version` was read."""
    assert binding.id is not None  # a loaded row has its key
    store = session.get_one(Store, binding.store_id)
    account = session.get_one(Account, binding.account_id)
    version = binding.version if expected_version is None else expected_version
    end_many(session=session, actor=actor, reason=reason, at=utcnow(), ends=[
        End(binding.id, version, store.branch_id, store.crm_store_id, account.userid, binding.shown,
            binding.reviewed_at is not None)])
    session.refresh(binding)
    return binding

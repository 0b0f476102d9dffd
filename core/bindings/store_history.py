"""A store's binding history and the accounts an operator may switch it to (换号),
as the bindings page's row panel shows them."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from base.errors import NotFound
from core.auth.permissions import Actor, Capability, require
from core.directory import accounts
from db.models import (
    Account,
    AccountStatus,
    Binding,
    StandbyAccount,
    Store,
    User,
)
from db.typed import select_columns


@dataclass(frozen=True)
class HistoryRow:
    binding_id: int
    wecom_userid: str
    wecom_name: str
    started_at: datetime
    shown: bool
    reviewed_at: datetime | None
    reviewed_by: str | None
    ended_at: datetime | None
    end_reason: str | None
    ended_by: str | None


def store_history(*, session: Session, actor: Actor, store_id: int) -> list[HistoryRow]:
    """Every binding the store ever had, newest first."""
    require(actor, Capability.view_directory)
    store = session.get(Store, store_id)
    if store is None:
        raise NotFound()
    require(actor, Capability.view_directory, branch_id=store.branch_id)
    reviewer, ender = aliased(User), aliased(User)
    rows = session.exec(
        select_columns(Binding.id, Account.userid, Account.name, Binding.started_at, Binding.shown,
                       Binding.reviewed_at, reviewer.username, Binding.ended_at, Binding.end_reason, ender.username)
        .join(Account, col(Account.id) == Binding.account_id)
        .join(reviewer, col(reviewer.id) == Binding.reviewed_by_id, isouter=True)
        .join(ender, col(ender.id) == Binding.ended_by_id, isouter=True)
        .where(col(Binding.store_id) == store_id)
        .order_by(col(Binding.started_at).desc(), col(Binding.id).desc())
    ).all()
    return [HistoryRow(*row) for row in rows]


# The replace form lists this many candidates; a search narrows the rest.
CANDIDATE_LIMIT = 100


def replacement_candidates(*, session: Session, actor: Actor, search: str = "", store_id: int | None = None,
                           limit: int = CANDIDATE_LIMIT) -> tuple[list[Account], int]:
    """Accounts a store can switch to, standby first, and how many there are:
    standby, or active without a current binding, and not full, and not
    reserved as another store's standby (with `store_id`, the store's own
    standby accounts are offered); matching `search` (userid prefix or name).
    A branch-scoped operator gets only accounts whose last store was in the
    operator's branch."""
    require(actor, Capability.review_entries)
    bound = select(Binding.account_id).where(col(Binding.ended_at).is_(None))
    reserved = select(StandbyAccount.account_id)
    if store_id is not None:
        reserved = reserved.where(col(StandbyAccount.store_id) != store_id)
    conditions: list[ColumnElement[bool]] = [
        col(Account.status) != AccountStatus.disabled, col(Account.customer_count) < col(Account.capacity_limit),
        col(Account.id).not_in(bound), col(Account.id).not_in(reserved)]
    if actor.branch_scope is not None:
        conditions.append(accounts.last_branch_expr() == actor.branch_scope)
    term = search.strip()
    if term:
        conditions.append(or_(func.lower(col(Account.userid)).startswith(term.lower(), autoescape=True),
                              col(Account.name).contains(term, autoescape=True)))
    total = session.exec(select(func.count(col(Account.id))).where(*conditions)).one()
    query = (
        select(Account)
        .where(*conditions)
        .order_by((col(Account.status) == AccountStatus.standby).desc(), col(Account.userid))
        .limit(limit)
    )
    return list(session.exec(query).all()), total

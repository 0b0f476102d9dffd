"""The figures on the overview page (概览)."""

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from core import entries, settings_store
from core.permissions import Actor, Capability, require
from core.scheduling.lease import heartbeat_age_seconds
from db.models import Account, AccountStatus, Binding, Store, StoreStatus


@dataclass(frozen=True)
class Overview:
    stores: int
    open_stores: int
    current_bindings: int
    bound_open_stores: int
    shown_entries: int
    pending_review: int
    accounts: int
    accounts_near_capacity: int
    accounts_full: int
    warn_pct: int
    heartbeat_age_seconds: float | None

    @property
    def binding_rate(self) -> float | None:
        return self.bound_open_stores / self.open_stores if self.open_stores else None


@dataclass(frozen=True)
class NeedsAction:
    crm_store_id: str
    store_name: str
    wecom_userid: str
    reason: str  # account_disabled | account_full | store_closed_shown


def overview(*, session: Session, actor: Actor) -> Overview:
    require(actor, Capability.view_directory)
    scope = actor.branch_scope
    store_scope = [Store.branch_id == scope] if scope is not None else []
    is_open = Store.status == StoreStatus.open
    stores, open_stores = session.exec(
        select(func.count(Store.id), func.count(Store.id).filter(is_open)).where(*store_scope)).one()
    current = col(Binding.ended_at).is_(None)
    bound = select(func.count(Binding.id), func.count(Binding.id).filter(is_open),
                   func.count(Binding.id).filter(col(Binding.shown).is_(True)),
                   func.count(Binding.id).filter(col(Binding.reviewed_at).is_(None))) \
        .join(Store, col(Store.id) == Binding.store_id).where(current, *store_scope)
    current_bindings, bound_open, shown, pending = session.exec(bound).one()
    warn_pct = settings_store.effective(session=session, key="capacity.warn_pct")
    near = Account.customer_count * 100 >= Account.capacity_limit * warn_pct
    full = Account.customer_count >= Account.capacity_limit
    account_query = select(func.count(Account.id), func.count(Account.id).filter(near),
                           func.count(Account.id).filter(full)).where(Account.status != AccountStatus.disabled)
    if scope is not None:
        account_query = account_query.join(Binding, (col(Binding.account_id) == Account.id) & current) \
            .join(Store, col(Store.id) == Binding.store_id).where(*store_scope)
    accounts, accounts_near, accounts_full = session.exec(account_query).one()
    return Overview(stores, open_stores, current_bindings, bound_open, shown, pending, accounts, accounts_near,
                    accounts_full, warn_pct, heartbeat_age_seconds(session=session))


def needs_action(*, session: Session, actor: Actor, limit: int = 200) -> list[NeedsAction]:
    """Current bindings whose store is not being served because of its account
    (the entry rule's account_disabled / account_full). Operators replace the
    account or unbind."""
    require(actor, Capability.view_directory)
    reason = entries.reason_expr()
    query = (
        select(Store.crm_store_id, Store.name, Account.userid, reason)
        .join(Binding, entries.current_binding_join())
        .join(Account, col(Account.id) == Binding.account_id)
        .where(reason.in_([entries.EntryReason.account_disabled, entries.EntryReason.account_full]))
        .order_by(Store.crm_store_id).limit(limit)
    )
    if actor.branch_scope is not None:
        query = query.where(Store.branch_id == actor.branch_scope)
    return [NeedsAction(*row) for row in session.exec(query).all()]

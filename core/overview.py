"""The figures on the overview page (概览)."""

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from core import settings_store
from core.auth.permissions import Actor, Capability, require
from core.bindings import entries
from core.scheduling.lease import heartbeat_age_seconds
from db.models import Account, AccountStatus, Binding, Store, StoreStatus


@dataclass(frozen=True)
class Overview:
    stores: int
    open_stores: int
    current_bindings: int
    bound_open_stores: int
    visible_entries: int      # what the client API answers visible: true for (the entry rule)
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
    reason: str  # account_disabled | account_standby | account_full


@dataclass(frozen=True)
class NeedsActionList:
    items: list[NeedsAction]   # the first `limit`, by CRM store ID
    total: int

    @property
    def cut(self) -> bool:
        return self.total > len(self.items)


def overview(*, session: Session, actor: Actor) -> Overview:
    require(actor, Capability.view_directory)
    scope = actor.branch_scope
    store_scope = [col(Store.branch_id) == scope] if scope is not None else []
    is_open = col(Store.status) == StoreStatus.open
    stores, open_stores = session.exec(
        select(func.count(col(Store.id)), func.count(col(Store.id)).filter(is_open)).where(*store_scope)).one()
    current = col(Binding.ended_at).is_(None)
    # Visible by the one entry rule, so the tile says what the API tells the App.
    # Bound open stores (core.bindings.service.counts_as_bound) counted over the current bindings this
    # query reads anyway: a store has one at most, and a correlated EXISTS per store doubles the rerun.
    bound = select(func.count(col(Binding.id)), func.count(col(Binding.id)).filter(is_open),
                   func.count(col(Binding.id)).filter(entries.reason_expr().is_(None)),
                   func.count(col(Binding.id)).filter(col(Binding.reviewed_at).is_(None))) \
        .select_from(Binding) \
        .join(Store, col(Store.id) == Binding.store_id) \
        .join(Account, col(Account.id) == Binding.account_id) \
        .where(current, *store_scope)
    current_bindings, bound_open, visible, pending = session.exec(bound).one()
    warn_pct = settings_store.effective(session=session, key="capacity.warn_pct")
    near = col(Account.customer_count) * 100 >= col(Account.capacity_limit) * warn_pct
    full = col(Account.customer_count) >= col(Account.capacity_limit)
    account_query = select(func.count(col(Account.id)), func.count(col(Account.id)).filter(near),
                           func.count(col(Account.id)).filter(full)).where(Account.status != AccountStatus.disabled)
    if scope is not None:
        account_query = account_query.join(Binding, (col(Binding.account_id) == Account.id) & current) \
            .join(Store, col(Store.id) == Binding.store_id).where(*store_scope)
    accounts, accounts_near, accounts_full = session.exec(account_query).one()
    return Overview(stores, open_stores, current_bindings, bound_open, visible, pending, accounts, accounts_near,
                    accounts_full, warn_pct, heartbeat_age_seconds(session=session))


def needs_action(*, session: Session, actor: Actor, limit: int = 200) -> NeedsActionList:
    """Current bindings of open stores that are not served because of their
    account (the entry rule's account_disabled, standby told apart, and
    account_full), whatever the flag says: operators replace the account,
    enable it, raise its limit or unbind. The first `limit` and the total."""
    require(actor, Capability.view_directory)
    reason = entries.reason_expr(standby_apart=True)
    query = (
        select(Store.crm_store_id, Store.name, Account.userid, reason)
        .join(Binding, entries.current_binding_join())
        .join(Account, col(Account.id) == Binding.account_id)
        .where(reason.in_([entries.EntryReason.account_disabled, entries.ACCOUNT_STANDBY,
                           entries.EntryReason.account_full]))
    )
    if actor.branch_scope is not None:
        query = query.where(Store.branch_id == actor.branch_scope)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    items = [NeedsAction(*row) for row in session.exec(query.order_by(Store.crm_store_id).limit(limit)).all()]
    return NeedsActionList(items, total)

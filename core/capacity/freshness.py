"""How fresh the customer counts the console shows are, by the one rule of
core.capacity.watch.freshness: a count is stale once older than twice its own
sync interval (a minute for an account watched closely, the configured interval
for the rest). An account's 7-day growth is the one kept in `account_growth`
(core.capacity.growth), as 容量监控 reads it."""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import and_, case, func
from sqlmodel import Session, col, select

from base.timeutil import utcnow
from core.auth.permissions import Actor, Capability, require
from core.capacity.rules import usage_pct
from core.capacity.watch import SYNCED_STATUSES, Freshness, freshness, stale_condition, watch_rules
from db.models import Account, AccountGrowth, Binding, Store
from db.typed import select_columns


def count_freshness(*, session: Session, actor: Actor, account_ids: Iterable[int],
                    now: datetime | None = None) -> dict[int, Freshness]:
    """The freshness of each count of the accounts a page lists (ids it read within the actor's scope).
    A disabled account is not synced at all: its count keeps its age but is not flagged."""
    require(actor, Capability.view_directory)
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    now = now or utcnow()
    rules = watch_rules(session=session)
    rows = session.exec(select_columns(Account.id, Account.status, Account.customer_count, Account.capacity_limit,
                                       Account.count_synced_at, AccountGrowth.growth_per_day)
                        .outerjoin(AccountGrowth, col(AccountGrowth.account_id) == Account.id)
                        .where(col(Account.id).in_(ids))).all()
    found = {}
    for account_id, status, count, limit, synced_at, growth in rows:
        assert account_id is not None  # a loaded row has its key
        if status not in SYNCED_STATUSES:
            found[account_id] = replace(freshness(rules, hot=False, synced_at=synced_at, now=now), stale=False)
            continue
        hot = rules.near_level(usage_pct(count, limit)) or rules.growing_fast(growth, limit)
        found[account_id] = freshness(rules, hot=hot, synced_at=synced_at, now=now)
    return found


@dataclass(frozen=True)
class ChainFreshness:
    accounts: int  # accounts whose counts are synced (active and standby)
    stale: int  # never listed included
    never: int  # never listed
    oldest: datetime | None  # the oldest listed count


def chain_freshness(*, session: Session, actor: Actor, now: datetime | None = None) -> ChainFreshness:
    """The counts of the actor's scope at a glance (for a branch-scoped actor, the
    accounts serving the branch's stores), counted in SQL."""
    require(actor, Capability.view_directory)
    now = now or utcnow()
    rules = watch_rules(session=session)
    synced_at = col(Account.count_synced_at)
    stale = stale_condition(rules, now, growth_per_day=col(AccountGrowth.growth_per_day))
    query = select(func.count(col(Account.id)), func.count(case((stale, 1))),
                   func.count(case((synced_at.is_(None), 1))), func.min(synced_at)) \
        .select_from(Account).outerjoin(AccountGrowth, col(AccountGrowth.account_id) == Account.id) \
        .where(col(Account.status).in_(SYNCED_STATUSES))
    if actor.branch_scope is not None:
        query = query.join(Binding, and_(col(Binding.account_id) == Account.id, col(Binding.ended_at).is_(None))) \
            .join(Store, col(Store.id) == Binding.store_id).where(Store.branch_id == actor.branch_scope)
    accounts, stale_count, never, oldest = session.exec(query).one()
    return ChainFreshness(accounts, stale_count, never, oldest)

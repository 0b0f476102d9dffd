"""What the 容量监控 page shows: each active account's usage, growth per day over
the last 7 days and days until full, counted, filtered, sorted and paged in SQL
(a large chain's accounts are never all loaded on a rerun); one account's trend."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Float, and_, case, cast, func, literal, not_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from base.errors import NotFound
from base.timeutil import utcnow
from core.auth.permissions import Actor, Capability, require
from core.capacity.growth import GROWTH_WINDOW, first_points, growth_per_day, keep_fresh
from core.capacity.rules import usage_pct
from core.capacity.watch import (
    SYNCED_STATUSES,
    WatchRules,
    freshness,
    hot_condition,
    stale_condition,
    watch_rules,
)
from db.fastsql import one_of
from db.models import Account, AccountGrowth, AccountStatus, Binding, Branch, CountSnapshot, Store
from db.typed import select_columns

Sort = Literal["risk", "days_to_full", "growth"]


@dataclass(frozen=True)
class AccountUsage:
    account_id: int
    userid: str
    name: str
    branch_id: int | None
    branch_name: str | None
    store_name: str | None
    customer_count: int
    capacity_limit: int
    pct: float
    synced_at: datetime | None
    sync_error: str | None
    growth_per_day: float | None
    days_to_full: float | None
    serving: bool  # bound to a store now; a replaced account only keeps its old customers
    watched: bool  # near a level or growing fast: listed every minute
    count_age_seconds: float | None  # None: never listed
    stale: bool  # older than twice its sync interval


@dataclass(frozen=True)
class UsageFilter:
    branch_id: int | None = None
    at_least_pct: int | None = None  # only accounts at or over this usage
    sort: Sort = "risk"


@dataclass(frozen=True)
class UsageSummary:
    accounts: int
    at_levels: dict[int, int]  # accounts at or over each asked level (percent)
    sync_errors: int
    watched: int
    stale: int


def days_to_full(count: int, limit: int, growth: float | None) -> float | None:
    if count >= limit:
        return 0.0
    if not growth or growth <= 0:
        return None
    return (limit - count) / growth


def _watched(rules: WatchRules, pct: float, growth: float | None, limit: int) -> bool:
    return rules.near_level(pct) or rules.growing_fast(growth, limit)


def fast_growing(*, session: Session, rules: WatchRules, now: datetime | None = None) -> set[int]:
    """The synced accounts whose 7-day growth alone makes them watched closely."""
    now = now or utcnow()
    firsts = first_points(session, now - GROWTH_WINDOW)
    rows = session.exec(select(Account.id, Account.customer_count, Account.capacity_limit, Account.count_synced_at)
                        .where(col(Account.status).in_(SYNCED_STATUSES))).all()
    growing: set[int] = set()
    for account_id, count, limit, synced_at in rows:
        assert account_id is not None  # a loaded row has its key
        if rules.growing_fast(growth_per_day(firsts.get(account_id), count, synced_at), limit):
            growing.add(account_id)
    return growing


class _Listing:
    """The page's accounts with one SQL expression per figure, on SQLite and PostgreSQL
    alike; they decide as the Python rules do (usage_pct, days_to_full, WatchRules,
    freshness), which work out the figures of the rows read."""

    def __init__(self, session: Session, scope: int | None, now: datetime) -> None:
        self.session = session
        self.rules = watch_rules(session=session)
        self.now = now
        self.scope = scope
        count, limit = col(Account.customer_count), col(Account.capacity_limit)
        # Where an account serves: the store of its current binding (the partial unique index),
        # or else of its latest one; only accounts without a current binding look further.
        self.binding = aliased(Binding)
        ended = aliased(Binding)
        latest_store = (select(ended.store_id).where(col(ended.account_id) == col(Account.id),
                                                     col(ended.ended_at).is_not(None))
                        .order_by(col(ended.started_at).desc(), col(ended.id).desc())
                        .limit(1).correlate(Account).scalar_subquery())
        self.current = (self.binding, and_(col(self.binding.account_id) == col(Account.id),
                                           col(self.binding.ended_at).is_(None)))
        self.placed = [(Store, col(Store.id) == func.coalesce(col(self.binding.store_id), latest_store)),
                       (Branch, col(Branch.id) == col(Store.branch_id))]
        growth = col(AccountGrowth.growth_per_day)
        self.growth = growth
        self.pct = case((limit > 0, cast(count, Float) * 100.0 / limit), else_=literal(0.0))
        self.days_to_full = case((count >= limit, literal(0.0)), (growth > 0, cast(limit - count, Float) / growth),
                                 else_=None)
        self.serving = col(self.binding.id).is_not(None)
        self.watched = hot_condition(self.rules, growth_per_day=growth)
        self.stale = stale_condition(self.rules, self.now, growth_per_day=growth)

    @staticmethod
    def at_least(level: int) -> Any:
        """usage_pct(...) >= level, in whole numbers."""
        limit = col(Account.capacity_limit)
        return and_(limit > 0, col(Account.customer_count) * 100 >= limit * level)

    def select(self, *columns: Any, placed: bool = False, at_least_pct: int | None = None,
               account_id: int | None = None):
        """Over the active accounts in scope; `placed`: with the store and branch of each
        (a lookup per account: only for the rows read, unless the scope needs it)."""
        query = select_columns(*columns).select_from(Account).outerjoin(*self.current)
        for table, on in self.placed if placed or self.scope is not None else []:
            query = query.outerjoin(table, on)
        query = query.outerjoin(AccountGrowth, col(AccountGrowth.account_id) == col(Account.id))
        query = query.where(Account.status == AccountStatus.active)
        if self.scope is not None:
            query = query.where(Store.branch_id == self.scope)
        if account_id is not None:
            query = query.where(Account.id == account_id)
        if at_least_pct is not None:
            query = query.where(self.at_least(at_least_pct))
        return query

    def order(self, sort: Sort) -> list[Any]:
        keys: list[Any]
        if sort == "days_to_full":
            keys = [self.days_to_full.asc().nulls_last(), self.pct.desc()]
        elif sort == "growth":
            keys = [func.coalesce(self.growth, 0.0).desc(), self.pct.desc()]
        else:
            keys = [not_(self.serving), self.pct.desc(), self.days_to_full.asc().nulls_last()]
        return [*keys, col(Account.userid), col(Account.id)]

    def rows(self, *, at_least_pct: int | None = None, account_id: int | None = None, sort: Sort = "risk",
             offset: int = 0, limit: int | None = None) -> list[AccountUsage]:
        # Sorted and cut without the placements, which are then looked up for the rows read only.
        chosen = self.select(Account.id, Account.userid, at_least_pct=at_least_pct, account_id=account_id)
        ids = [key for key, _userid in self.session.exec(
            chosen.order_by(*self.order(sort)).offset(offset).limit(limit)).all()]
        found = {row[0]: row for row in self.session.exec(self.select(
            Account.id, Account.userid, Account.name, Account.customer_count, Account.capacity_limit,
            Account.count_synced_at, Account.sync_error, self.growth, Store.branch_id, Branch.name, Store.name,
            self.binding.id, placed=True).where(one_of(self.session.connection(), col(Account.id), ids))).all()}
        rows = []
        for (key, userid, name, count, capacity, synced_at, sync_error, growth, branch_id, branch_name, store_name,
             binding_id) in (found[key] for key in ids):
            pct = usage_pct(count, capacity)
            fresh = freshness(self.rules, hot=_watched(self.rules, pct, growth, capacity), synced_at=synced_at,
                              now=self.now)
            rows.append(AccountUsage(
                key, userid, name, branch_id, branch_name, store_name, count, capacity, pct, synced_at, sync_error,
                growth, days_to_full(count, capacity, growth), binding_id is not None,
                fresh.hot, fresh.age_seconds, fresh.stale))
        return rows

    def summary(self, levels: tuple[int, ...]) -> UsageSummary:
        def counted(condition: Any) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        figures = self.session.exec(self.select(
            func.count(), counted(and_(col(Account.sync_error).is_not(None), col(Account.sync_error) != "")),
            counted(self.watched), counted(self.stale), *[counted(self.at_least(level)) for level in levels])).one()
        accounts, errors, watched, stale, *at_levels = figures
        return UsageSummary(int(accounts), dict(zip(levels, map(int, at_levels), strict=True)), int(errors),
                            int(watched), int(stale))


def _listing(session: Session, actor: Actor, branch_id: int | None, now: datetime | None) -> _Listing:
    require(actor, Capability.view_directory, branch_id=branch_id)
    now = now or utcnow()
    keep_fresh(session=session, now=now)
    return _Listing(session, actor.branch_scope if actor.branch_scope is not None else branch_id, now)


def usage_summary(*, session: Session, actor: Actor, branch_id: int | None = None, levels: tuple[int, ...] = (),
                  now: datetime | None = None) -> UsageSummary:
    """How many active accounts the actor sees, how many are at or over each of
    `levels`, have a sync error, are watched closely and have a stale count."""
    return _listing(session, actor, branch_id, now).summary(levels)


def account_usage(*, session: Session, actor: Actor, filters: UsageFilter = UsageFilter(), offset: int = 0,
                  limit: int | None = None, now: datetime | None = None) -> list[AccountUsage]:
    """The active accounts the actor may see, `offset` and `limit` of them in the
    filter's order: riskiest first (accounts a store's entry sends customers to
    before the ones already replaced, then by usage), soonest full, or fastest growing."""
    listing = _listing(session, actor, filters.branch_id, now)
    return listing.rows(at_least_pct=filters.at_least_pct, sort=filters.sort, offset=offset, limit=limit)


@dataclass(frozen=True)
class Trend:
    usage: AccountUsage
    points: list[tuple[datetime, int]]


def account_trend(*, session: Session, actor: Actor, account_id: int, days: int = 30,
                  now: datetime | None = None) -> Trend:
    now = now or utcnow()
    usage = next(iter(_listing(session, actor, None, now).rows(account_id=account_id)), None)
    if usage is None:
        raise NotFound("capacity.not_found")
    points = session.exec(select(CountSnapshot.taken_at, CountSnapshot.customer_count).where(
        CountSnapshot.account_id == account_id, col(CountSnapshot.taken_at) >= now - timedelta(days=days))
        .order_by(col(CountSnapshot.taken_at))).all()
    return Trend(usage, [(taken_at, count) for taken_at, count in points])


def visible_branches(*, session: Session, actor: Actor) -> list[tuple[int, str, str]]:
    """(id, code, name) of the branches the actor may filter by."""
    require(actor, Capability.view_directory)
    query = select(Branch.id, Branch.code, Branch.name).order_by(Branch.code)
    if actor.branch_scope is not None:
        query = query.where(Branch.id == actor.branch_scope)
    branches: list[tuple[int, str, str]] = []
    for branch_id, code, name in session.exec(query).all():
        assert branch_id is not None  # a loaded row has its key
        branches.append((branch_id, code, name))
    return branches

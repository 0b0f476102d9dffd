"""What the 容量监控 page shows: each active account's usage, growth per day over
the last 7 days and days until full; one account's trend."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from base.errors import NotFound
from base.timeutil import utcnow
from core.auth.permissions import Actor, Capability, require
from core.capacity.placement import placements
from core.capacity.rules import usage_pct
from core.capacity.watch import SYNCED_STATUSES, WatchRules, freshness, watch_rules
from db.models import Account, AccountStatus, Branch, CountSnapshot
from db.typed import select_columns

GROWTH_WINDOW = timedelta(days=7)
# Fewer hours than this between the first and the last point say nothing about a day.
MIN_SPAN = timedelta(hours=1)


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


def _growth(first: tuple[int, datetime] | None, count: int, at: datetime | None) -> float | None:
    if first is None or at is None or at - first[1] < MIN_SPAN:
        return None
    return (count - first[0]) / ((at - first[1]).total_seconds() / 86400)


def days_to_full(count: int, limit: int, growth: float | None) -> float | None:
    if count >= limit:
        return 0.0
    if not growth or growth <= 0:
        return None
    return (limit - count) / growth


def _first_points(session: Session, since: datetime,
                  account_ids: list[int] | None = None) -> dict[int, tuple[int, datetime]]:
    """Each account's first snapshot since `since`: one seek per account in the
    (account_id, taken_at) index, not a scan of the whole window's snapshots."""
    first = (select(CountSnapshot.id).where(col(CountSnapshot.account_id) == col(Account.id),
                                            col(CountSnapshot.taken_at) >= since)
             .order_by(col(CountSnapshot.taken_at)).limit(1).correlate(Account).scalar_subquery())
    query = (select(CountSnapshot.account_id, CountSnapshot.customer_count, CountSnapshot.taken_at)
             .select_from(Account).join(CountSnapshot, col(CountSnapshot.id) == first))
    if account_ids is not None:
        query = query.where(col(Account.id).in_(account_ids))
    return {account_id: (count, taken_at) for account_id, count, taken_at in session.exec(query).all()}


def _watched(rules: WatchRules, pct: float, growth: float | None, limit: int) -> bool:
    return rules.near_level(pct) or rules.growing_fast(growth, limit)


def fast_growing(*, session: Session, rules: WatchRules, now: datetime | None = None) -> set[int]:
    """The synced accounts whose 7-day growth alone makes them watched closely."""
    now = now or utcnow()
    firsts = _first_points(session, now - GROWTH_WINDOW)
    rows = session.exec(select(Account.id, Account.customer_count, Account.capacity_limit, Account.count_synced_at)
                        .where(col(Account.status).in_(SYNCED_STATUSES))).all()
    growing: set[int] = set()
    for account_id, count, limit, synced_at in rows:
        assert account_id is not None  # a loaded row has its key
        if rules.growing_fast(_growth(firsts.get(account_id), count, synced_at), limit):
            growing.add(account_id)
    return growing


def account_usage(*, session: Session, actor: Actor, branch_id: int | None = None,
                  now: datetime | None = None) -> list[AccountUsage]:
    """Every active account the actor may see, riskiest first: accounts a store's
    entry sends customers to before the ones already replaced, then by usage."""
    require(actor, Capability.view_directory, branch_id=branch_id)
    return _usage(session, actor.branch_scope if actor.branch_scope is not None else branch_id, now or utcnow())


def _usage(session: Session, scope: int | None, now: datetime, account_id: int | None = None) -> list[AccountUsage]:
    only = None if account_id is None else [account_id]
    places = placements(session=session, account_ids=only)
    firsts = _first_points(session, now - GROWTH_WINDOW, only)
    rules = watch_rules(session=session)
    rows: list[AccountUsage] = []
    # Plain columns, not Account objects: a large chain's rows are read on every rerun of the page.
    query = select_columns(Account.id, Account.userid, Account.name, Account.customer_count, Account.capacity_limit,
                           Account.count_synced_at, Account.sync_error).where(Account.status == AccountStatus.active)
    if account_id is not None:
        query = query.where(Account.id == account_id)
    for key, userid, name, count, limit, synced_at, sync_error in session.exec(query).all():
        place = places.get(key)
        if scope is not None and (place is None or place.branch_id != scope):
            continue
        growth = _growth(firsts.get(key), count, synced_at)
        pct = usage_pct(count, limit)
        fresh = freshness(rules, hot=_watched(rules, pct, growth, limit), synced_at=synced_at, now=now)
        rows.append(AccountUsage(
            key, userid, name, place.branch_id if place else None, place.branch_name if place else None,
            place.store_name if place else None, count, limit, pct, synced_at, sync_error, growth,
            days_to_full(count, limit, growth), bool(place and place.serving), fresh.hot, fresh.age_seconds,
            fresh.stale))
    rows.sort(key=lambda r: (not r.serving, -r.pct, r.days_to_full if r.days_to_full is not None else float("inf"),
                             r.userid))
    return rows


@dataclass(frozen=True)
class Trend:
    usage: AccountUsage
    points: list[tuple[datetime, int]]


def account_trend(*, session: Session, actor: Actor, account_id: int, days: int = 30,
                  now: datetime | None = None) -> Trend:
    require(actor, Capability.view_directory)
    now = now or utcnow()
    usage = next(iter(_usage(session, actor.branch_scope, now, account_id)), None)
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

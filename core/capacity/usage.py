"""What the 容量监控 page shows: each active account's usage, growth per day over
the last 7 days and days until full; one account's trend."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func
from sqlmodel import Session, col, select

from base.errors import NotFound
from base.timeutil import utcnow
from core.auth.permissions import Actor, Capability, require
from core.capacity.placement import placements
from core.capacity.rules import usage_pct
from db.models import Account, AccountStatus, Branch, CountSnapshot

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
    query = select(CountSnapshot.account_id, func.min(CountSnapshot.taken_at).label("taken_at")).where(
        col(CountSnapshot.taken_at) >= since)
    if account_ids is not None:
        query = query.where(col(CountSnapshot.account_id).in_(account_ids))
    first = query.group_by(col(CountSnapshot.account_id)).subquery()
    rows = session.exec(select(CountSnapshot.account_id, CountSnapshot.customer_count, CountSnapshot.taken_at).join(
        first, and_(col(CountSnapshot.account_id) == first.c.account_id,
                    col(CountSnapshot.taken_at) == first.c.taken_at))).all()
    return {account_id: (count, taken_at) for account_id, count, taken_at in rows}


def account_usage(*, session: Session, actor: Actor, branch_id: int | None = None,
                  now: datetime | None = None) -> list[AccountUsage]:
    """Every active account the actor may see, riskiest first: accounts a store's
    entry sends customers to before the ones already replaced, then by usage."""
    require(actor, Capability.view_directory, branch_id=branch_id)
    scope = actor.branch_scope if actor.branch_scope is not None else branch_id
    now = now or utcnow()
    places = placements(session=session)
    firsts = _first_points(session, now - GROWTH_WINDOW)
    rows: list[AccountUsage] = []
    for account in session.exec(select(Account).where(Account.status == AccountStatus.active)).all():
        assert account.id is not None  # a loaded row has its key
        place = places.get(account.id)
        if scope is not None and (place is None or place.branch_id != scope):
            continue
        growth = _growth(firsts.get(account.id), account.customer_count, account.count_synced_at)
        rows.append(AccountUsage(
            account.id, account.userid, account.name, place.branch_id if place else None,
            place.branch_name if place else None, place.store_name if place else None,
            account.customer_count, account.capacity_limit,
            usage_pct(account.customer_count, account.capacity_limit), account.count_synced_at,
            account.sync_error, growth, days_to_full(account.customer_count, account.capacity_limit, growth),
            bool(place and place.serving)))
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
    usage = next((row for row in account_usage(session=session, actor=actor, now=now)
                  if row.account_id == account_id), None)
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

"""Which accounts the count sync lists, and how fresh each count is.

An account close to a level (within `capacity.watch_band_pct` points below warn,
critical, full or the switch level) or growing fast (its 7-day growth at least
`capacity.watch_growth_pct` points of its limit per day) is *watched closely*:
listed again every minute. Every other account keeps the configured interval
(`CAPACITY_SYNC_INTERVAL_SECONDS`). The band is judged on the live count, which
the add/delete callbacks move between syncs, so a callback that brings an
account into the band makes it watched closely at the next tick.

The sync runs every `TICK_SECONDS` and lists at most a tick's share of
`wecom.calls_per_minute`: the accounts watched closely first, then those an
operator's 立即同步客户数 asked for (core.capacity.sweep), then the others,
stalest first within each.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, false, func, not_, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from base.config import get_settings
from base.timeutil import utcnow
from core import settings_store
from db.models import Account, AccountStatus

HOT_INTERVAL_SECONDS = 60
TICK_SECONDS = 15
# A count older than this many of its intervals is flagged as stale.
STALE_AFTER_INTERVALS = 2
# The sync lists the accounts of these statuses: a standby's count decides
# whether it can take over its store (core.bindings.standby.usable_standby).
SYNCED_STATUSES = (AccountStatus.active, AccountStatus.standby)


@dataclass(frozen=True)
class WatchRules:
    levels: tuple[int, ...]
    band: int
    fast_growth: int  # points of the limit per day
    cold_interval: int

    def near_level(self, pct: float) -> bool:
        return any(level - self.band <= pct < level for level in self.levels)

    def growing_fast(self, growth: float | None, limit: int) -> bool:
        return growth is not None and limit > 0 and 100.0 * growth / limit >= self.fast_growth

    def interval(self, hot: bool) -> int:
        return HOT_INTERVAL_SECONDS if hot else self.cold_interval


def watch_rules(*, session: Session) -> WatchRules:
    values = settings_store.effective_all(session=session)
    levels = [values["capacity.warn_pct"], values["capacity.critical_pct"], values["capacity.full_pct"]]
    # 0 turns automatic switching off: then there is no switch level to watch.
    if values["capacity.switch_pct"]:
        levels.append(values["capacity.switch_pct"])
    return WatchRules(levels=tuple(sorted(set(levels))), band=values["capacity.watch_band_pct"],
                      fast_growth=values["capacity.watch_growth_pct"],
                      cold_interval=get_settings().CAPACITY_SYNC_INTERVAL_SECONDS)


@dataclass(frozen=True)
class Freshness:
    hot: bool
    age_seconds: float | None  # None: never listed
    stale: bool


def freshness(rules: WatchRules, *, hot: bool, synced_at: datetime | None, now: datetime) -> Freshness:
    """The one rule for every count the console shows: its age, stale once older
    than `STALE_AFTER_INTERVALS` of its own interval (never listed is stale)."""
    if synced_at is None:
        return Freshness(hot, None, True)
    age = max(0.0, (now - synced_at).total_seconds())
    return Freshness(hot, age, age > STALE_AFTER_INTERVALS * rules.interval(hot))


def hot_condition(rules: WatchRules, growing: Collection[int] = (),
                  growth_per_day: Any = None) -> ColumnElement[bool]:
    """`WatchRules.near_level` or growing fast, as SQL over Account: growing fast
    by the ids in `growing`, or by `growth_per_day`, a column of each account's
    growth per day."""
    used, limit = col(Account.customer_count) * 100, col(Account.capacity_limit)
    # An account without a known growth is not growing fast (FALSE, never NULL, so that NOT hot stays true).
    fast = [] if growth_per_day is None else [and_(growth_per_day.is_not(None), limit > 0,
                                                   growth_per_day * 100 >= limit * rules.fast_growth)]
    return or_(false(), *[and_(used >= limit * (level - rules.band), used < limit * level)
                          for level in rules.levels],
               *([col(Account.id).in_(list(growing))] if growing else []), *fast)


def stale_condition(rules: WatchRules, now: datetime, growing: Collection[int] = (),
                    growth_per_day: Any = None) -> ColumnElement[bool]:
    """`freshness(...).stale` as SQL over Account, for figures counted over a whole chain."""
    synced_at = col(Account.count_synced_at)
    hot = hot_condition(rules, growing, growth_per_day)
    return or_(synced_at.is_(None),
               and_(hot, synced_at < now - timedelta(seconds=STALE_AFTER_INTERVALS * rules.interval(True))),
               and_(not_(hot), synced_at < now - timedelta(seconds=STALE_AFTER_INTERVALS * rules.interval(False))))


@dataclass(frozen=True)
class SyncPlan:
    hot: list[int]  # listed this tick, watched closely
    cold: list[int]  # listed this tick, at the configured interval
    watched: int  # accounts watched closely in all
    waiting: int  # due but over this tick's budget; first in line next tick
    requested: list[int] = field(default_factory=list)  # listed this tick for an operator's 立即同步客户数

    @property
    def account_ids(self) -> list[int]:
        return self.hot + self.requested + self.cold


def plan_sync(*, session: Session, rules: WatchRules, budget: int, growing: Collection[int] = (),
              requested: Sequence[ColumnElement[bool]] = (), now: datetime | None = None) -> SyncPlan:
    """The accounts to list this tick, in order, at most `budget` of them.

    A hot account is due once its count is a minute old (less half a tick, so
    that a tick arriving a few seconds early does not skip a whole minute); a
    cold one only once a full interval has passed. `requested`: the accounts each
    running sweep still waits for (core.capacity.sweep), due now whatever their age."""
    now = now or utcnow()
    hot_due = now - timedelta(seconds=HOT_INTERVAL_SECONDS - TICK_SECONDS / 2)
    cold_due = now - timedelta(seconds=rules.cold_interval)
    # Worked out in SQL: a large chain's accounts are never all loaded, every tick.
    synced_at = col(Account.count_synced_at)
    hot = hot_condition(rules, growing)
    hot_due_now = and_(hot, or_(synced_at.is_(None), synced_at <= hot_due))
    swept = and_(or_(false(), *requested), not_(hot_due_now))
    cold_due_now = and_(not_(hot), or_(synced_at.is_(None), synced_at <= cold_due), not_(swept))
    synced = col(Account.status).in_(SYNCED_STATUSES)
    watched, due = session.exec(select(func.count(case((hot, 1))),
                                       func.count(case((or_(hot_due_now, swept, cold_due_now), 1))))
                                .where(synced)).one()

    def stalest(condition, room: int) -> list[int]:
        if room <= 0:
            return []
        ids = session.exec(select(Account.id).where(synced, condition)
                           .order_by(synced_at.asc().nulls_first(), col(Account.id)).limit(room)).all()
        return [account_id for account_id in ids if account_id is not None]

    chosen_hot = stalest(hot_due_now, budget)
    chosen_swept = stalest(swept, budget - len(chosen_hot)) if requested else []
    chosen_cold = stalest(cold_due_now, budget - len(chosen_hot) - len(chosen_swept))
    return SyncPlan(hot=chosen_hot, cold=chosen_cold, watched=watched, requested=chosen_swept,
                    waiting=due - len(chosen_hot) - len(chosen_swept) - len(chosen_cold))


def tick_budget(calls_per_minute: int) -> int:
    """A tick's share of the per-minute pace: ticks never overlap and the client
    paces every call, so no minute holds more than the pace."""
    return max(1, calls_per_minute * TICK_SECONDS // 60)

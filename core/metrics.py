"""The funnel and its rates (DESIGN.md, Metrics), exact to the last user.

Every user count is distinct `user_key`s over the whole range (an active user
on three days counts once), days cut at midnight in CONSOLE_TIMEZONE, `to`
inclusive. Chain- and branch-wide counts read `funnel_rollup` (a few rows per
branch and day, see db.models.events.FunnelRollup); a store filter or the
store drill-down count `funnel_activity` directly, which is indexed by store
and by branch. The binding figures are as of now (core.stores.branch_summaries).
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, text
from sqlmodel import Session, col, select

from core.errors import InvalidInput, NotFound, PermissionDenied
from core.permissions import Actor, Capability, require
from core.scheduling.jobs import JobContext, register_job
from core.stores import branch_summaries
from core.timeutil import to_storage
from core.tracking import PLATFORMS, day_of, number_of
from db.models import (Binding, Branch, ContactEvent, FunnelActivity, FunnelDirtyDay, FunnelRollup, Store,
                       StoreStatus)

# Ranges are at most this long; a gap of this many days or more means "not
# seen earlier in any allowed range".
MAX_RANGE_DAYS = 366
GAP_CAP = MAX_RANGE_DAYS
ALL_PLATFORMS = "*"
CHAIN = 0


# --- roll-up -----------------------------------------------------------------

# (platform kept, branch kept) of each roll-up scope; each has its own distinct users.
_SCOPES = ((False, False), (True, False), (False, True), (True, True))

_HISTORY_SQL = """
SELECT a.step, a.user_key, a.day, a.branch_id, a.platform FROM funnel_activity a
JOIN (SELECT DISTINCT step, user_key FROM funnel_activity WHERE day BETWEEN :d0 AND :d1) t
  ON a.step = t.step AND a.user_key = t.user_key
WHERE a.day BETWEEN :lo AND :d1
"""
# "+day": read the whole table in order rather than through the day index (2× faster).
_ALL_HISTORY_SQL = "SELECT step, user_key, day, branch_id, platform FROM funnel_activity WHERE +day BETWEEN :lo AND :d1"


def _same_as_previous(*columns: np.ndarray) -> np.ndarray:
    same = np.ones(len(columns[0]), dtype=bool)
    same[0] = False
    for column in columns:
        same[1:] &= column[1:] == column[:-1]
    return same


def _sort_order(*keys: np.ndarray) -> np.ndarray:
    """The order sorting by the keys, first key first: one argsort of a packed
    int64 when the keys fit in 62 bits (they do at chain scale), else lexsort."""
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    capacity = 1
    for key in keys:
        low = int(key.min()) if len(key) else 0
        width = (int(key.max()) - low + 1) if len(key) else 1
        capacity *= width
        if capacity >= 2 ** 62:
            return np.lexsort(tuple(reversed(keys)))
        packed = packed * width + (key - low)
    return np.argsort(packed, kind="stable")


def _rollup_rows(history: pd.DataFrame, d0: int, d1: int) -> list[dict[str, Any]]:
    """The roll-up rows of days d0…d1 from the activity of the users seen on
    those days (their earlier days included, up to GAP_CAP back). Sorting and
    differencing in numpy: the SQL window-function form is ~20× slower on SQLite."""
    if history.empty:
        return []
    steps, step_index = pd.factorize(history["step"])
    platforms, platform_index = pd.factorize(history["platform"])
    step_names, platform_names = np.asarray(step_index, dtype=object), np.asarray(platform_index, dtype=object)
    users = pd.factorize(history["user_key"])[0]
    days = history["day"].to_numpy(dtype=np.int64)
    branches = history["branch_id"].to_numpy(dtype=np.int64)
    known_platform = platform_names[platforms] != ""
    rows: list[dict[str, Any]] = []
    for keep_platform, keep_branch in _SCOPES:
        # WeCom does not say on which platform a customer was added.
        chosen = known_platform if keep_platform else np.ones(len(days), dtype=bool)
        p = platforms[chosen] if keep_platform else np.zeros(int(chosen.sum()), dtype=np.int64)
        b = branches[chosen] if keep_branch else np.zeros(int(chosen.sum()), dtype=np.int64)
        s, u, d = steps[chosen], users[chosen], days[chosen]
        order = _sort_order(p, b, s, u, d)
        p, b, s, u, d = p[order], b[order], s[order], u[order], d[order]
        distinct = ~(_same_as_previous(p, b, s, u) & _same_as_previous(d))
        p, b, s, u, d = p[distinct], b[distinct], s[distinct], u[distinct], d[distinct]
        same_user = _same_as_previous(p, b, s, u)
        previous = np.empty_like(d)
        previous[0] = 0
        previous[1:] = d[:-1]
        gap = np.minimum(np.where(same_user, d - previous, GAP_CAP), GAP_CAP)
        inside = (d >= d0) & (d <= d1)
        counts = pd.DataFrame({"p": p[inside], "branch_id": b[inside], "s": s[inside], "day": d[inside],
                               "gap": gap[inside]}).groupby(["p", "branch_id", "s", "day", "gap"]).size()
        counts = counts.rename("users").reset_index()
        counts["platform"] = platform_names[counts["p"].to_numpy()] if keep_platform else ALL_PLATFORMS
        counts["step"] = step_names[counts["s"].to_numpy()]
        rows.extend(counts[["platform", "branch_id", "step", "day", "gap", "users"]].astype(
            {"branch_id": object, "day": object, "gap": object, "users": object}).to_dict("records"))
    return rows


def refresh_rollup(*, session: Session) -> dict[str, int]:
    """Bring the roll-up up to date with the activity. Days from the earliest
    changed day on are recomputed (a new fact on day d can change the gaps of
    the same users on later days). The caller commits."""
    dirty = session.exec(select(FunnelDirtyDay.day, FunnelDirtyDay.version)).all()
    if not dirty:
        return {"days": 0, "rows": 0}
    d0 = min(day for day, _ in dirty)
    first, last = session.exec(select(func.min(FunnelActivity.day), func.max(FunnelActivity.day))).one()
    d1 = max([day for day, _ in dirty] + ([last] if last is not None else []))
    params = {"d0": d0, "d1": d1, "lo": d0 - GAP_CAP}
    # When every day is recomputed, every user is touched: skip the join.
    sql = _ALL_HISTORY_SQL if first is None or d0 <= first else _HISTORY_SQL
    # Column-wise from plain tuples: building a frame from Row objects is 10× slower.
    columns = list(zip(*session.connection().execute(text(sql), params).fetchall())) or [()] * 5
    history = pd.DataFrame(dict(zip(["step", "user_key", "day", "branch_id", "platform"], columns)))
    rows = _rollup_rows(history, d0, d1)
    session.exec(delete(FunnelRollup).where(col(FunnelRollup.day).between(d0, d1)))
    for start in range(0, len(rows), 10_000):
        session.connection().execute(FunnelRollup.__table__.insert(), rows[start:start + 10_000])
    for day, version in dirty:
        session.exec(delete(FunnelDirtyDay).where(FunnelDirtyDay.day == day, FunnelDirtyDay.version == version))
    return {"days": d1 - d0 + 1, "rows": len(rows)}


def pending_days(*, session: Session) -> int:
    """Days with facts the roll-up has not taken in yet."""
    return session.exec(select(func.count()).select_from(FunnelDirtyDay)).one()


@register_job(id="metrics_rollup", interval_seconds=120, order=40, requestable=True)
def rollup_job(ctx: JobContext) -> dict:
    with Session(ctx.engine) as session:
        figures = refresh_rollup(session=session)
        session.commit()
    return figures


# --- figures -----------------------------------------------------------------

@dataclass(frozen=True)
class MetricsFilter:
    start: date
    end: date
    branch_id: int | None = None
    store_id: int | None = None
    platform: str | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> "MetricsFilter":
        """The period of the same length just before this one."""
        return MetricsFilter(self.start - timedelta(days=self.days), self.start - timedelta(days=1),
                             self.branch_id, self.store_id, self.platform)


@dataclass
class Funnel:
    users: dict[str, int] = field(default_factory=dict)
    # WeCom does not say on which platform a customer was added.
    added_known: bool = True

    def count(self, step: str) -> int | None:
        if step == "added" and not self.added_known:
            return None
        return self.users.get(step, 0)

    @staticmethod
    def _rate(top: int | None, bottom: int | None) -> float | None:
        return None if top is None or not bottom else top / bottom

    @property
    def entry_ctr(self) -> float | None:
        return self._rate(self.count("entry_click"), self.count("order_result_view"))

    @property
    def add_click_rate(self) -> float | None:
        return self._rate(self.count("add_click"), self.count("guide_view"))

    @property
    def add_rate(self) -> float | None:
        return self._rate(self.count("added"), self.count("guide_view"))


@dataclass
class ScopeFigures:
    """One row of the figures: the chain, a branch or a store."""

    key: str
    name: str
    open_stores: int
    bound_stores: int
    funnel: Funnel
    branch_id: int | None = None
    store_id: int | None = None
    status: str | None = None

    @property
    def binding_rate(self) -> float | None:
        return self.bound_stores / self.open_stores if self.open_stores else None

    def as_dict(self) -> dict[str, Any]:
        f = self.funnel
        return {
            "open_stores": self.open_stores, "bound_stores": self.bound_stores, "binding_rate": self.binding_rate,
            "order_result_users": f.count("order_result_view"), "entry_click_users": f.count("entry_click"),
            "guide_view_users": f.count("guide_view"), "add_click_users": f.count("add_click"),
            "added_customers": f.count("added"), "entry_ctr": f.entry_ctr, "add_click_rate": f.add_click_rate,
            "add_rate": f.add_rate,
        }


def _scoped(*, session: Session, actor: Actor, filters: MetricsFilter) -> MetricsFilter:
    """The filter with the actor's branch scope applied, after checking it."""
    require(actor, Capability.view_metrics)
    if filters.end < filters.start:
        raise InvalidInput("metrics.bad_range")
    if filters.days > MAX_RANGE_DAYS:
        raise InvalidInput("metrics.range_too_long", days=MAX_RANGE_DAYS)
    if filters.platform is not None and filters.platform not in PLATFORMS:
        raise InvalidInput("metrics.bad_platform")
    scope = actor.branch_scope
    branch_id = filters.branch_id
    if scope is not None:
        if branch_id is not None and branch_id != scope:
            raise PermissionDenied("error.branch_out_of_scope")
        branch_id = scope
    if filters.store_id is not None:
        store = session.get(Store, filters.store_id)
        if store is None:
            raise NotFound()
        if scope is not None and store.branch_id != scope:
            raise PermissionDenied("error.branch_out_of_scope")
        if branch_id is not None and store.branch_id != branch_id:
            raise InvalidInput("metrics.store_not_in_branch")
    return MetricsFilter(filters.start, filters.end, branch_id, filters.store_id, filters.platform)


def _rollup_counts(session: Session, filters: MetricsFilter, branch_ids: list[int] | None) -> dict[int, Funnel]:
    """Distinct users per step over the range from the roll-up: for the chain
    (branch_ids None) or for each listed branch."""
    a, b = number_of(filters.start), number_of(filters.end)
    query = (select(FunnelRollup.branch_id, FunnelRollup.step, func.sum(FunnelRollup.users))
             .where(FunnelRollup.platform == (filters.platform or ALL_PLATFORMS),
                    col(FunnelRollup.day).between(a, b),
                    col(FunnelRollup.gap) > col(FunnelRollup.day) - a)
             .group_by(FunnelRollup.branch_id, FunnelRollup.step))
    if branch_ids is None:
        query = query.where(FunnelRollup.branch_id == CHAIN)
    else:
        query = query.where(col(FunnelRollup.branch_id).in_(branch_ids or [-1]))
    result: dict[int, Funnel] = {}
    for branch_id, step, users in session.exec(query).all():
        result.setdefault(branch_id, Funnel(added_known=filters.platform is None)).users[step] = int(users)
    return result


def _activity_counts(session: Session, filters: MetricsFilter, *, by_store: bool) -> dict[int | None, Funnel]:
    """Distinct users per step (and store) straight from the activity, for one
    store or for the stores of one branch."""
    a, b = number_of(filters.start), number_of(filters.end)
    group = [FunnelActivity.store_id] if by_store else []
    query = (select(*group, FunnelActivity.step, func.count(func.distinct(FunnelActivity.user_key)))
             .where(col(FunnelActivity.day).between(a, b))
             .group_by(*group, FunnelActivity.step))
    if filters.store_id is not None:
        query = query.where(FunnelActivity.store_id == filters.store_id)
    elif filters.branch_id is not None:
        query = query.where(FunnelActivity.branch_id == filters.branch_id)
    if filters.platform is not None:
        query = query.where(FunnelActivity.platform == filters.platform)
    result: dict[int | None, Funnel] = {}
    for row in session.exec(query).all():
        store_id, step, users = row if by_store else (None, *row)
        result.setdefault(store_id, Funnel(added_known=filters.platform is None)).users[step] = int(users)
    return result


def _funnel(session: Session, filters: MetricsFilter) -> Funnel:
    empty = Funnel(added_known=filters.platform is None)
    if filters.store_id is not None:
        return _activity_counts(session, filters, by_store=False).get(None, empty)
    if filters.branch_id is not None:
        return _rollup_counts(session, filters, [filters.branch_id]).get(filters.branch_id, empty)
    return _rollup_counts(session, filters, None).get(CHAIN, empty)


def _store_binding(session: Session, store_id: int) -> tuple[int, int]:
    store = session.get(Store, store_id)
    is_open = store is not None and store.status == StoreStatus.open
    bound = is_open and session.exec(select(Binding.id).where(Binding.store_id == store_id,
                                                              col(Binding.ended_at).is_(None))).first() is not None
    return int(is_open), int(bound)


def overall(*, session: Session, actor: Actor, filters: MetricsFilter) -> ScopeFigures:
    """The figures for the whole filter (chain, branch or store)."""
    filters = _scoped(session=session, actor=actor, filters=filters)
    funnel = _funnel(session, filters)
    if filters.store_id is not None:
        open_stores, bound = _store_binding(session, filters.store_id)
        return ScopeFigures("store", "", open_stores, bound, funnel, store_id=filters.store_id)
    summaries = [s for s in branch_summaries(session=session, actor=actor)
                 if filters.branch_id is None or s.branch_id == filters.branch_id]
    return ScopeFigures("chain" if filters.branch_id is None else "branch", "",
                        sum(s.open_stores for s in summaries), sum(s.bound_open_stores for s in summaries),
                        funnel, branch_id=filters.branch_id)


def previous_period(*, session: Session, actor: Actor, filters: MetricsFilter) -> ScopeFigures:
    return overall(session=session, actor=actor, filters=filters.previous())


def by_branch(*, session: Session, actor: Actor, filters: MetricsFilter) -> list[ScopeFigures]:
    """One row per branch the actor sees (only the chosen one when filtered)."""
    filters = _scoped(session=session, actor=actor, filters=filters)
    summaries = [s for s in branch_summaries(session=session, actor=actor)
                 if filters.branch_id is None or s.branch_id == filters.branch_id]
    funnels = _rollup_counts(session, filters, [s.branch_id for s in summaries])
    return [ScopeFigures(s.code, s.name, s.open_stores, s.bound_open_stores,
                         funnels.get(s.branch_id, Funnel(added_known=filters.platform is None)),
                         branch_id=s.branch_id) for s in summaries]


def by_store(*, session: Session, actor: Actor, filters: MetricsFilter) -> list[ScopeFigures]:
    """The drill-down: every store of one branch with its funnel."""
    filters = _scoped(session=session, actor=actor, filters=filters)
    if filters.branch_id is None:
        raise InvalidInput("metrics.branch_required")
    counts = _activity_counts(session, MetricsFilter(filters.start, filters.end, filters.branch_id, None,
                                                     filters.platform), by_store=True)
    current = (Binding.store_id == Store.id) & col(Binding.ended_at).is_(None)
    rows = session.exec(select(Store.id, Store.crm_store_id, Store.name, Store.status, Binding.id)
                        .join(Binding, current, isouter=True)
                        .where(Store.branch_id == filters.branch_id)
                        .order_by(Store.crm_store_id)).all()
    result = []
    for store_id, crm_store_id, name, status, binding_id in rows:
        is_open = status == StoreStatus.open
        result.append(ScopeFigures(crm_store_id, name, int(is_open), int(is_open and binding_id is not None),
                                   counts.get(store_id, Funnel(added_known=filters.platform is None)),
                                   branch_id=filters.branch_id, store_id=store_id, status=status))
    return result


def daily(*, session: Session, actor: Actor, filters: MetricsFilter) -> list[tuple[date, Funnel]]:
    """Distinct users per step on each day of the range (every day listed)."""
    filters = _scoped(session=session, actor=actor, filters=filters)
    a, b = number_of(filters.start), number_of(filters.end)
    if filters.store_id is not None:
        query = (select(FunnelActivity.day, FunnelActivity.step, func.count(func.distinct(FunnelActivity.user_key)))
                 .where(FunnelActivity.store_id == filters.store_id, col(FunnelActivity.day).between(a, b))
                 .group_by(FunnelActivity.day, FunnelActivity.step))
        if filters.platform is not None:
            query = query.where(FunnelActivity.platform == filters.platform)
    else:
        query = (select(FunnelRollup.day, FunnelRollup.step, func.sum(FunnelRollup.users))
                 .where(FunnelRollup.platform == (filters.platform or ALL_PLATFORMS),
                        FunnelRollup.branch_id == (filters.branch_id or CHAIN),
                        col(FunnelRollup.day).between(a, b))
                 .group_by(FunnelRollup.day, FunnelRollup.step))
    days = {n: Funnel(added_known=filters.platform is None) for n in range(a, b + 1)}
    for day, step, users in session.exec(query).all():
        days[day].users[step] = int(users)
    return [(day_of(n), funnel) for n, funnel in days.items()]


def unattributed_adds(*, session: Session, actor: Actor, filters: MetricsFilter) -> int:
    """Customers added in the range that no store could be attributed to (no
    State naming a store, no binding current for the account then): they are
    outside every add rate. Only HQ-wide actors see the chain-wide figure."""
    filters = _scoped(session=session, actor=actor, filters=filters)
    if actor.branch_scope is not None or filters.branch_id is not None or filters.store_id is not None:
        return 0
    start = to_storage(datetime.combine(filters.start, time.min))
    end = to_storage(datetime.combine(filters.end + timedelta(days=1), time.min))
    return session.exec(select(func.count(func.distinct(ContactEvent.external_userid))).where(
        ContactEvent.change_type == "add_external_contact", col(ContactEvent.store_id).is_(None),
        col(ContactEvent.occurred_at) >= start, col(ContactEvent.occurred_at) < end)).one()


def report(*, session: Session, actor: Actor, start: date, end: date, branch_code: str | None = None) -> dict:
    """The figures of `python -m console metrics` (DESIGN.md): overall and per branch."""
    branch_id = None
    if branch_code:
        branch = session.exec(select(Branch).where(Branch.code == branch_code.strip())).first()
        if branch is None:
            raise NotFound("metrics.unknown_branch", code=branch_code)
        branch_id = branch.id
    filters = MetricsFilter(start, end, branch_id)
    total = overall(session=session, actor=actor, filters=filters)
    branches = by_branch(session=session, actor=actor, filters=filters)
    return {"from": start.isoformat(), "to": end.isoformat(), "overall": total.as_dict(),
            "branches": [{"branch_code": row.key, "branch_name": row.name, **row.as_dict()} for row in branches]}


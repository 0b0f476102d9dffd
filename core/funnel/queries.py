"""The funnel's figures as the page and `metrics` read them: overall, per branch,
per store, per day, and the export names."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from base.errors import InvalidInput, NotFound, PermissionDenied
from core.auth.permissions import Actor, Capability, require
from core.bindings.service import counts_as_bound
from core.directory.stores import branch_summaries
from core.funnel.intake import ADDED_BY_STATE, PLATFORMS, day_of, number_of
from core.funnel.rollup import ALL_PLATFORMS, CHAIN, MAX_RANGE_DAYS, ROLLUP_STEPS, recorded_zone
from db.fastsql import one_of
from db.models import Branch, ContactEvent, FunnelActivity, FunnelRollup, Store, StoreStatus
from db.typed import select_columns


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
        if step in ("added", ADDED_BY_STATE) and not self.added_known:
            return None
        return self.users.get(step, 0)

    @property
    def added_by_state(self) -> int | None:
        """The added customers a channel code's State attributed (the precise part)."""
        return self.count(ADDED_BY_STATE)

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

    def conversions(self, steps: list[str]) -> list[float | None]:
        """Each step's users as a share of the step before it: None for the first step,
        and where either count is unknown or the step before had nobody."""
        return [None] + [self._rate(self.count(step), self.count(before)) for before, step in pairwise(steps)]


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
        raise InvalidInput("funnel.bad_range")
    if filters.days > MAX_RANGE_DAYS:
        raise InvalidInput("funnel.range_too_long", days=MAX_RANGE_DAYS)
    if filters.platform is not None and filters.platform not in PLATFORMS:
        raise InvalidInput("funnel.bad_platform")
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
            raise InvalidInput("funnel.store_not_in_branch")
    return MetricsFilter(filters.start, filters.end, branch_id, filters.store_id, filters.platform)


def _rollup_counts(session: Session, filters: MetricsFilter, branch_ids: list[int] | None) -> dict[int, Funnel]:
    """Distinct users per step over the range from the roll-up: for the chain
    (branch_ids None) or for each listed branch."""
    a, b = number_of(filters.start), number_of(filters.end)
    query = (select(FunnelRollup.branch_id, FunnelRollup.step, func.sum(FunnelRollup.users))
             .where(FunnelRollup.platform == (filters.platform or ALL_PLATFORMS),
                    # Every step named, so the primary key seeks straight to the days.
                    col(FunnelRollup.step).in_(ROLLUP_STEPS),
                    col(FunnelRollup.day).between(a, b),
                    col(FunnelRollup.gap) > col(FunnelRollup.day) - a)
             .group_by(col(FunnelRollup.branch_id), col(FunnelRollup.step)))
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
    store or for the stores now in one branch (their whole history)."""
    a, b = number_of(filters.start), number_of(filters.end)
    group = [col(FunnelActivity.store_id)] if by_store else []
    query = (select_columns(*group, FunnelActivity.step, func.count(func.distinct(FunnelActivity.user_key)))
             .where(col(FunnelActivity.day).between(a, b))
             .group_by(*group, col(FunnelActivity.step)))
    if filters.store_id is not None:
        query = query.where(FunnelActivity.store_id == filters.store_id)
    elif filters.branch_id is not None:
        query = query.join(Store, col(Store.id) == FunnelActivity.store_id).where(Store.branch_id == filters.branch_id)
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
    row = session.exec(select(Store.status == StoreStatus.open, counts_as_bound()).where(Store.id == store_id)).first()
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)


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
        raise InvalidInput("funnel.branch_required")
    counts = _activity_counts(session, MetricsFilter(filters.start, filters.end, filters.branch_id, None,
                                                     filters.platform), by_store=True)
    rows = session.exec(select_columns(Store.id, Store.crm_store_id, Store.name, Store.status, counts_as_bound())
                        .where(Store.branch_id == filters.branch_id)
                        .order_by(Store.crm_store_id)).all()
    result = []
    for store_id, crm_store_id, name, status, bound in rows:
        result.append(ScopeFigures(crm_store_id, name, int(status == StoreStatus.open), int(bound),
                                   counts.get(store_id, Funnel(added_known=filters.platform is None)),
                                   branch_id=filters.branch_id, store_id=store_id, status=status))
    return result


def _ranking_counts(session: Session, filters: MetricsFilter) -> dict[int, Funnel]:
    """Each store's distinct guide-page viewers and add clickers over the range (stores now
    in the filter's branch): a step at a time through the (step, store_id, user_key) index,
    which holds that step's facts store by store, so no sort of the chain's facts is needed."""
    a, b = number_of(filters.start), number_of(filters.end)
    result: dict[int, Funnel] = {}
    for step in ("guide_view", "add_click"):
        query = (select(FunnelActivity.store_id, func.count(func.distinct(FunnelActivity.user_key)))
                 # `day + 0`: not a term the (store_id, day) index can take, or SQLite's planner would
                 # rather skip-scan that index for the range, three to four times slower at 50,000 stores.
                 .where(FunnelActivity.step == step, (col(FunnelActivity.day) + 0).between(a, b))
                 .group_by(col(FunnelActivity.store_id)))
        if filters.branch_id is not None:
            query = query.join(Store, col(Store.id) == FunnelActivity.store_id).where(
                Store.branch_id == filters.branch_id)
        if filters.platform is not None:
            query = query.where(FunnelActivity.platform == filters.platform)
        for store_id, users in session.exec(query).all():
            result.setdefault(store_id, Funnel(added_known=filters.platform is None)).users[step] = int(users)
    return result


@dataclass(frozen=True)
class StoreRanking:
    """Stores by add-click rate, among those with enough guide-page viewers to say something."""

    top: list[ScopeFigures]
    bottom: list[ScopeFigures]
    ranked: int  # stores that had enough traffic to be ranked


def store_ranking(*, session: Session, actor: Actor, filters: MetricsFilter, size: int,
                  min_guide_views: int) -> StoreRanking:
    """The `size` stores with the highest and the lowest add-click rate (add clicks / guide-page
    viewers) over the filter's range, counting only stores with at least `min_guide_views` viewers:
    two viewers and two clicks are not a 100 % store. Ties go to the store with more viewers.
    The lowest are listed worst first and never repeat a store of the highest."""
    if size < 1 or min_guide_views < 1:
        raise InvalidInput("funnel.ranking.bad_limits")
    filters = _scoped(session=session, actor=actor, filters=filters)
    counts = _ranking_counts(session, filters)
    enough = {store_id: funnel for store_id, funnel in counts.items()
              if (funnel.count("guide_view") or 0) >= min_guide_views}
    # Ranked on the store IDs alone; only the stores shown are read in full.
    keys = dict(session.exec(select(Store.id, Store.crm_store_id)
                             .where(one_of(session.connection(), col(Store.id), list(enough)))).all())
    ranked = sorted((store_id for store_id in enough if store_id in keys), key=lambda store_id: (
        -(enough[store_id].add_click_rate or 0.0), -(enough[store_id].count("guide_view") or 0), keys[store_id]))
    top_ids = ranked[:size]
    bottom_ids = ranked[max(size, len(ranked) - size):][::-1]
    shown = {store_id: ScopeFigures(crm_store_id, name, int(status == StoreStatus.open), int(bound), enough[store_id],
                                    branch_id=branch_id, store_id=store_id, status=status)
             for store_id, crm_store_id, name, status, branch_id, bound in session.exec(
                 select_columns(Store.id, Store.crm_store_id, Store.name, Store.status, Store.branch_id,
                                counts_as_bound()).where(col(Store.id).in_(top_ids + bottom_ids or [-1]))).all()}
    top = [shown[store_id] for store_id in top_ids]
    bottom = [shown[store_id] for store_id in bottom_ids]
    return StoreRanking(top, bottom, len(ranked))


def daily(*, session: Session, actor: Actor, filters: MetricsFilter) -> list[tuple[date, Funnel]]:
    """Distinct users per step on each day of the range (every day listed)."""
    filters = _scoped(session=session, actor=actor, filters=filters)
    a, b = number_of(filters.start), number_of(filters.end)
    if filters.store_id is not None:
        query = (select(FunnelActivity.day, FunnelActivity.step, func.count(func.distinct(FunnelActivity.user_key)))
                 .where(FunnelActivity.store_id == filters.store_id, col(FunnelActivity.day).between(a, b))
                 .group_by(col(FunnelActivity.day), col(FunnelActivity.step)))
        if filters.platform is not None:
            query = query.where(FunnelActivity.platform == filters.platform)
    else:
        query = (select(FunnelRollup.day, FunnelRollup.step, func.sum(FunnelRollup.users))
                 .where(FunnelRollup.platform == (filters.platform or ALL_PLATFORMS),
                        FunnelRollup.branch_id == (filters.branch_id or CHAIN),
                        col(FunnelRollup.step).in_(ROLLUP_STEPS), col(FunnelRollup.day).between(a, b))
                 .group_by(col(FunnelRollup.day), col(FunnelRollup.step)))
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
    zone = ZoneInfo(recorded_zone(session=session))
    start = datetime.combine(filters.start, time.min, zone).astimezone(UTC).replace(tzinfo=None)
    end = datetime.combine(filters.end + timedelta(days=1), time.min, zone).astimezone(UTC).replace(tzinfo=None)
    return session.exec(select(func.count(func.distinct(ContactEvent.external_userid))).where(
        ContactEvent.change_type == "add_external_contact", col(ContactEvent.store_id).is_(None),
        col(ContactEvent.occurred_at) >= start, col(ContactEvent.occurred_at) < end)).one()


def report(*, session: Session, actor: Actor, start: date, end: date, branch_code: str | None = None) -> dict:
    """The figures of `python -m console metrics` (DESIGN.md): overall and per branch."""
    branch_id = None
    if branch_code:
        branch = session.exec(select(Branch).where(Branch.code == branch_code.strip())).first()
        if branch is None:
            raise NotFound("funnel.unknown_branch", code=branch_code)
        branch_id = branch.id
    filters = MetricsFilter(start, end, branch_id)
    total = overall(session=session, actor=actor, filters=filters)
    branches = by_branch(session=session, actor=actor, filters=filters)
    return {"from": start.isoformat(), "to": end.isoformat(), "overall": total.as_dict(),
            "branches": [{"branch_code": row.key, "branch_name": row.name, **row.as_dict()} for row in branches]}

"""立即同步客户数: every account in the operator's scope listed again as soon as
the WeCom pace allows.

A sweep is the "run now" request of the count sync (a JobRequest of `SYNC_JOB`):
from its `requested_at` on, every account of the requester's scope whose count
is older is due at once. The sidecar's ticks take those accounts right after
the ones watched closely, within `wecom.calls_per_minute` (core.capacity.watch),
so a 50,000-account chain is swept in minutes without blocking the page or
starving the accounts close to a level. An account is done for the sweep once
its count is listed, or once the attempt failed (its `sync_error` says why), so
a member WeCom refuses is not retried every tick. A sweep no tick finished
within `SWEEP_HORIZON` stops forcing its accounts; they keep their interval.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from base.timeutil import utcnow
from core import audit, settings_store
from core.auth.permissions import Actor, Capability, require
from core.capacity.watch import SYNCED_STATUSES, hot_condition, watch_rules
from db.models import Account, Binding, JobRequest, Role, StandbyAccount, Store, User
from db.typed import select_columns

SYNC_JOB = "capacity.sync_counts"
SWEEP_HORIZON = timedelta(hours=1)


@dataclass(frozen=True)
class Sweep:
    request_id: int
    requested_at: datetime
    branch_id: int | None  # the requester's scope; None: the whole chain
    picked: bool  # the sidecar has taken the request (it runs a tick at once)


def in_branch(branch_id: int) -> ColumnElement[bool]:
    """Accounts serving a store of the branch, and the standby accounts reserved for its stores."""
    serving = (select(Binding.account_id).join(Store, col(Store.id) == Binding.store_id)
               .where(col(Binding.ended_at).is_(None), Store.branch_id == branch_id))
    reserved = (select(StandbyAccount.account_id).join(Store, col(Store.id) == StandbyAccount.store_id)
                .where(Store.branch_id == branch_id))
    return or_(col(Account.id).in_(serving), col(Account.id).in_(reserved))


def _scope(branch_id: int | None) -> ColumnElement[bool]:
    return true() if branch_id is None else in_branch(branch_id)


def _listed(sweep: Sweep) -> ColumnElement[bool]:
    # Never NULL: a never-listed account is not listed, and then not "not failed" either.
    synced_at = col(Account.count_synced_at)
    return and_(synced_at.is_not(None), synced_at >= sweep.requested_at)


def _failed(sweep: Sweep) -> ColumnElement[bool]:
    # A failed attempt writes the reason and stamps the row (core.capacity.sync).
    return and_(not_(_listed(sweep)), col(Account.sync_error).is_not(None),
                col(Account.updated_at) >= sweep.requested_at)


def waiting_condition(sweep: Sweep) -> ColumnElement[bool]:
    """The accounts the sweep still waits for: in its scope, neither listed nor failed since it was asked for."""
    synced_at = col(Account.count_synced_at)
    return and_(_scope(sweep.branch_id), or_(synced_at.is_(None), synced_at < sweep.requested_at),
                not_(_failed(sweep)))


def _sweeps(session: Session, now: datetime, branch_ids: list[int | None] | None = None) -> list[Sweep]:
    """The sweeps asked for within the horizon, newest first; with `branch_ids`, only those of these scopes."""
    rows = session.exec(select_columns(JobRequest.id, JobRequest.requested_at, JobRequest.picked_at, User.role,
                                       User.branch_id)
                        .join(User, col(User.id) == JobRequest.requested_by_id, isouter=True)
                        .where(JobRequest.job_id == SYNC_JOB, col(JobRequest.requested_at) >= now - SWEEP_HORIZON)
                        .order_by(col(JobRequest.requested_at).desc(), col(JobRequest.id).desc())).all()
    sweeps = []
    for request_id, requested_at, picked_at, role, branch_id in rows:
        assert request_id is not None  # a loaded row has its key
        # As Actor.branch_scope has it: HQ's administrator sees every branch.
        scope = None if role is None or role == Role.hq_admin else branch_id
        if branch_ids is None or scope in branch_ids:
            sweeps.append(Sweep(request_id, requested_at, scope, picked_at is not None))
    return sweeps


def running_sweeps(*, session: Session, now: datetime | None = None) -> list[ColumnElement[bool]]:
    """What the sync's plan takes after the accounts watched closely: each sweep's waiting accounts."""
    return [waiting_condition(sweep) for sweep in _sweeps(session, now or utcnow())]


@dataclass(frozen=True)
class SweepProgress:
    sweep: Sweep
    total: int  # accounts the sweep lists (within the viewer's scope)
    listed: int
    failed: int
    per_minute: int  # wecom.calls_per_minute
    watched: int  # accounts close to a level: listed every minute before the sweep's

    @property
    def waiting(self) -> int:
        return self.total - self.listed - self.failed

    @property
    def done(self) -> bool:
        return self.waiting <= 0

    @property
    def minutes_left(self) -> int:
        """At the pace left over by the accounts watched closely, rounded up."""
        spare = max(1, self.per_minute - self.watched)
        return math.ceil(self.waiting / spare)


def _visible(actor: Actor) -> list[int | None]:
    """The sweeps that cover the actor's scope: the chain-wide ones, and a branch's own."""
    return [None] if actor.branch_scope is None else [None, actor.branch_scope]


def sweep_progress(*, session: Session, actor: Actor, now: datetime | None = None) -> SweepProgress | None:
    """The latest sweep covering the actor's scope, counted over the accounts of that scope."""
    require(actor, Capability.view_directory)
    sweeps = _sweeps(session, now or utcnow(), _visible(actor))
    if not sweeps:
        return None
    sweep = sweeps[0]
    in_scope = and_(col(Account.status).in_(SYNCED_STATUSES), _scope(sweep.branch_id), _scope(actor.branch_scope))
    rules = watch_rules(session=session)
    total, listed, failed, watched = session.exec(select(
        func.count(case((in_scope, 1))), func.count(case((and_(in_scope, _listed(sweep)), 1))),
        func.count(case((and_(in_scope, _failed(sweep)), 1))),
        func.count(case((and_(col(Account.status).in_(SYNCED_STATUSES), hot_condition(rules)), 1))))).one()
    per_minute = settings_store.effective(session=session, key="wecom.calls_per_minute")
    return SweepProgress(sweep, total, listed, failed, per_minute, watched)


def request_sweep(*, session: Session, actor: Actor, now: datetime | None = None) -> Sweep:
    """Ask for a sweep of the actor's scope; a running one of the same or a wider
    scope is returned instead of a second. Audited like every "run now"."""
    require(actor, Capability.manage_alerts)
    now = now or utcnow()
    for sweep in _sweeps(session, now, _visible(actor)):
        remaining = session.exec(select(func.count()).select_from(Account).where(
            col(Account.status).in_(SYNCED_STATUSES), _scope(actor.branch_scope), waiting_condition(sweep))).one()
        if remaining:
            return sweep
    request = JobRequest(job_id=SYNC_JOB, requested_by_id=actor.user_id, requested_at=now)
    session.add(request)
    session.flush()
    assert request.id is not None  # flushed
    audit.record(session=session, actor=actor, action="job.request", entity_type="job", entity_id=SYNC_JOB,
                 branch_id=actor.branch_scope)
    return Sweep(request.id, now, actor.branch_scope, False)


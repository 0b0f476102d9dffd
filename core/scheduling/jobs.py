"""The job registry, job runs and "run now" requests."""

import importlib
import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from base.errors import InvalidInput
from base.problems import problem
from base.timeutil import utcnow
from core import audit
from core.auth.permissions import Actor, Capability, require
from core.scheduling.lease import Fence, LeaseLost
from db.models import JobRequest, JobRun

log = logging.getLogger("scheduler")

# Modules that declare jobs with `register_job`; each domain adds its own.
JOB_MODULES = [
    "core.scheduling.housekeeping",
    "core.import_runs.jobs",
    "core.directory.jobs",
    "core.capacity.jobs",
    "core.capacity.growth",
    "core.codes.jobs",
    "core.codes.links_jobs",
    "core.alerts.jobs",
    "core.funnel.jobs",
]


@dataclass(frozen=True)
class JobContext:
    engine: Engine
    holder: str
    # The lease this run started under; None outside the sidecar (tests, tools),
    # where nothing is fenced.
    fence: Fence | None = None

    def check_lease(self, session: Session) -> None:
        """Raise LeaseLost when another sidecar took over; call inside the
        transaction that writes."""
        if self.fence is not None:
            self.fence.check(session)


@dataclass(frozen=True)
class JobSpec:
    id: str
    run: Callable[[JobContext], dict[str, Any] | None]
    interval_seconds: int
    # Position in `scheduler.py --once` (sync members → sync counts → evaluate → deliver → roll up).
    order: int
    # Operators may queue this job from the console.
    requestable: bool = False


_REGISTRY: dict[str, JobSpec] = {}


def register_job(*, id: str, interval_seconds: int, order: int, requestable: bool = False):
    def decorator(func: Callable[[JobContext], dict[str, Any] | None]):
        _REGISTRY[id] = JobSpec(id=id, run=func, interval_seconds=interval_seconds, order=order,
                                requestable=requestable)
        return func
    return decorator


def load_jobs() -> list[JobSpec]:
    for module in JOB_MODULES:
        importlib.import_module(module)
    return sorted(_REGISTRY.values(), key=lambda spec: (spec.order, spec.id))


def run_job(spec: JobSpec, ctx: JobContext) -> bool:
    """Run one job and record the run (start, end, outcome, figures). Returns
    whether it succeeded; a failure is recorded, never raised. A job that finds
    the lease taken over stops and is recorded as interrupted; one whose lease is
    already gone does not start."""
    try:
        with Session(ctx.engine) as session:
            ctx.check_lease(session)
            run = JobRun(job_id=spec.id, holder=ctx.holder)
            session.add(run)
            session.commit()
            run_id = run.id
    except LeaseLost as exc:
        log.warning("job %s not started: %s", spec.id, exc)
        return False
    figures: dict[str, Any] | None = None
    error: str | None = None
    outcome = "ok"
    try:
        figures = spec.run(ctx)
    except LeaseLost as exc:
        outcome, error = "interrupted", f"{type(exc).__name__}: {exc}"
        log.warning("job %s stopped: %s", spec.id, exc)
    except Exception as exc:  # a job's failure must not stop the sidecar
        outcome, error = "failed", f"{type(exc).__name__}: {exc}"
        log.error("job %s failed: %s\n%s", spec.id, error, traceback.format_exc())
    with Session(ctx.engine) as session:
        session.exec(update(JobRun).where(col(JobRun.id) == run_id).values(
            finished_at=utcnow(), outcome=outcome,
            figures_json=json.dumps(figures, ensure_ascii=False, default=str) if figures else None,
            error=problem("jobs.exception", error=error[:2000]) if error else None))
        session.commit()
    return outcome == "ok"


def interrupt_runs_of_others(*, session: Session, holder: str, now: datetime | None = None) -> int:
    """On taking the lease over: runs another holder left "running" were cut off
    (that sidecar was killed or lost the lease) and are marked interrupted."""
    result = session.exec(update(JobRun).where(col(JobRun.outcome) == "running", col(JobRun.holder) != holder)
                          .values(outcome="interrupted", finished_at=now or utcnow(),
                                  error=problem("jobs.interrupted_reason")))
    return result.rowcount


def request_run(*, session: Session, actor: Actor, job_id: str) -> JobRequest:
    """Queue "run now"; the acting sidecar picks it up within seconds."""
    require(actor, Capability.manage_alerts)
    specs = {spec.id: spec for spec in load_jobs()}
    if job_id not in specs or not specs[job_id].requestable:
        raise InvalidInput("jobs.unknown_job", job_id=job_id)
    pending = session.exec(select(JobRequest).where(JobRequest.job_id == job_id,
                                                    col(JobRequest.done_at).is_(None))).first()
    if pending is not None:
        return pending
    request = JobRequest(job_id=job_id, requested_by_id=actor.user_id)
    session.add(request)
    session.flush()
    audit.record(session=session, actor=actor, action="job.request", entity_type="job", entity_id=job_id,
                 branch_id=actor.branch_scope)
    return request


def take_requests(*, session: Session, token: str, now: datetime | None = None) -> dict[str, list[int]]:
    """Pick the requests not done yet: job id → request ids. A request stays
    waiting until its job has run (`finish_requests`), so one picked by a sidecar
    that was killed before running it is picked again. Only the lease holder
    calls this, one pass at a time, so nothing picked here is still running."""
    now = now or utcnow()
    waiting = session.exec(select(JobRequest).where(col(JobRequest.done_at).is_(None))
                           .order_by(col(JobRequest.requested_at), col(JobRequest.id))).all()
    taken: dict[str, list[int]] = {}
    for request in waiting:
        assert request.id is not None  # a loaded row has its key
        result = session.exec(update(JobRequest).where(
            col(JobRequest.id) == request.id, col(JobRequest.done_at).is_(None),
            col(JobRequest.picked_by).is_(None) if request.picked_by is None
            else col(JobRequest.picked_by) == request.picked_by).values(picked_at=now, picked_by=token))
        if result.rowcount == 1:
            taken.setdefault(request.job_id, []).append(request.id)
    session.commit()
    return taken


def finish_requests(*, session: Session, request_ids: list[int], now: datetime | None = None) -> None:
    """The job ran (whatever its outcome, recorded in its run): the requests are done."""
    session.exec(update(JobRequest).where(col(JobRequest.id).in_(request_ids))
                 .values(done_at=now or utcnow()))
    session.commit()


def runs_by_job(*, session: Session, per_job: int = 10) -> dict[str, list[JobRun]]:
    """The last `per_job` runs of each job, newest first (the sidecar's history).
    Each job's runs are read through the (job_id, started_at) index: a month of
    runs every 15 s is hundreds of thousands of rows, never ranked as a whole."""
    history: dict[str, list[JobRun]] = {}
    for job_id in session.exec(select(JobRun.job_id).distinct().order_by(JobRun.job_id)).all():
        history[job_id] = list(session.exec(select(JobRun).where(JobRun.job_id == job_id)
                                            .order_by(col(JobRun.started_at).desc(), col(JobRun.id).desc())
                                            .limit(per_job)).all())
    return history


def pending_request_ids(*, session: Session) -> list[str]:
    """Jobs asked for and not run yet (waiting or running)."""
    return list(session.exec(select(JobRequest.job_id).where(col(JobRequest.done_at).is_(None))).all())

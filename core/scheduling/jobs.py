"""The job registry, job runs and "run now" requests."""

import importlib
import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.errors import InvalidInput
from core.permissions import Actor, Capability, require
from core.timeutil import utcnow
from db.models import JobRequest, JobRun

log = logging.getLogger("scheduler")

# Modules that declare jobs with `register_job`; each domain adds its own.
JOB_MODULES = [
    "core.scheduling.housekeeping",
    "core.capacity.jobs",
    "core.metrics",
]


@dataclass(frozen=True)
class JobContext:
    engine: Engine
    holder: str


@dataclass(frozen=True)
class JobSpec:
    id: str
    run: Callable[[JobContext], dict[str, Any] | None]
    interval_seconds: int
    # Position in `scheduler.py --once` (sync → evaluate → deliver → roll up).
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
    whether it succeeded; a failure is recorded, never raised."""
    with Session(ctx.engine) as session:
        run = JobRun(job_id=spec.id, holder=ctx.holder)
        session.add(run)
        session.commit()
        run_id = run.id
    figures: dict[str, Any] | None = None
    error: str | None = None
    try:
        figures = spec.run(ctx)
    except Exception as exc:  # a job's failure must not stop the sidecar
        error = f"{type(exc).__name__}: {exc}"
        log.error("job %s failed: %s\n%s", spec.id, error, traceback.format_exc())
    with Session(ctx.engine) as session:
        session.exec(update(JobRun).where(col(JobRun.id) == run_id).values(
            finished_at=utcnow(), outcome="failed" if error else "ok",
            figures_json=json.dumps(figures, ensure_ascii=False, default=str) if figures else None,
            error=error[:2000] if error else None))
        session.commit()
    return error is None


def request_run(*, session: Session, actor: Actor, job_id: str) -> JobRequest:
    """Queue "run now"; the acting sidecar picks it up within seconds."""
    require(actor, Capability.manage_alerts)
    specs = {spec.id: spec for spec in load_jobs()}
    if job_id not in specs or not specs[job_id].requestable:
        raise InvalidInput("jobs.unknown_job", job_id=job_id)
    pending = session.exec(select(JobRequest).where(JobRequest.job_id == job_id,
                                                    col(JobRequest.picked_at).is_(None))).first()
    if pending is not None:
        return pending
    request = JobRequest(job_id=job_id, requested_by_id=actor.user_id)
    session.add(request)
    session.flush()
    return request


def take_requests(*, session: Session) -> list[str]:
    """Mark pending requests picked and return their job ids (each once)."""
    now = utcnow()
    pending = session.exec(select(JobRequest).where(col(JobRequest.picked_at).is_(None))
                           .order_by(JobRequest.requested_at)).all()
    job_ids: list[str] = []
    for request in pending:
        result = session.exec(update(JobRequest).where(col(JobRequest.id) == request.id,
                                                       col(JobRequest.picked_at).is_(None)).values(picked_at=now))
        if result.rowcount == 1 and request.job_id not in job_ids:
            job_ids.append(request.job_id)
    session.commit()
    return job_ids


def latest_runs(*, session: Session) -> list[JobRun]:
    """The newest run of each job."""
    newest = select(JobRun.job_id, func.max(JobRun.id).label("id")).group_by(JobRun.job_id).subquery()
    return list(session.exec(select(JobRun).join(newest, col(JobRun.id) == newest.c.id)
                             .order_by(JobRun.job_id)).all())


def recent_runs(*, session: Session, job_id: str | None = None, limit: int = 50) -> list[JobRun]:
    query = select(JobRun).order_by(col(JobRun.id).desc()).limit(limit)
    if job_id:
        query = query.where(JobRun.job_id == job_id)
    return list(session.exec(query).all())


def pending_request_ids(*, session: Session) -> list[str]:
    return list(session.exec(select(JobRequest.job_id).where(col(JobRequest.picked_at).is_(None))).all())

"""Jobs that keep the database tidy."""

from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import Session, col

from base.timeutil import utcnow
from core.scheduling.jobs import JobContext, register_job
from db.models import JobRun, LoginAttempt, LoginSession

KEEP_JOB_RUNS = timedelta(days=30)
KEEP_LOGIN_ATTEMPTS = timedelta(days=30)
KEEP_ENDED_SESSIONS = timedelta(days=30)


@register_job(id="housekeeping", interval_seconds=6 * 3600, order=90)
def purge_old_rows(ctx: JobContext) -> dict:
    now = utcnow()
    with Session(ctx.engine) as session:
        runs = session.exec(delete(JobRun).where(col(JobRun.started_at) < now - KEEP_JOB_RUNS)).rowcount
        attempts = session.exec(delete(LoginAttempt).where(
            col(LoginAttempt.attempted_at) < now - KEEP_LOGIN_ATTEMPTS)).rowcount
        sessions = session.exec(delete(LoginSession).where(
            col(LoginSession.last_seen_at) < now - KEEP_ENDED_SESSIONS)).rowcount
        session.commit()
    return {"job_runs": runs, "login_attempts": attempts, "login_sessions": sessions}

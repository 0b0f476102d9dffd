"""The sidecar's import-run job: a run left half-applied by a process that died
(an operator's page closed mid-import, a killed CLI) is finished within a minute,
and the member-left handovers held back while a binding sheet was written are done."""

from sqlmodel import Session

from core.directory.members import hand_over_deferred
from core.import_runs.runs import RESUME_JOB, is_sqlite, resume_abandoned
from core.scheduling.jobs import JobContext, register_job


@register_job(id=RESUME_JOB, interval_seconds=60, order=7, requestable=True)
def resume_job(ctx: JobContext) -> dict:
    with Session(ctx.engine) as session:
        if not is_sqlite(session):
            return {"imports_finished": 0}  # one transaction there: a run never outlives its process
        finished = len(resume_abandoned(session=session))
    return {"imports_finished": finished, "handovers": hand_over_deferred(engine=ctx.engine)}

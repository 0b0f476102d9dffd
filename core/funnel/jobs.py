"""The funnel's sidecar job: roll up pending facts."""


from sqlmodel import Session

from core.funnel.rollup import refresh_rollup
from core.scheduling.jobs import JobContext, register_job


@register_job(id="funnel.rollup", interval_seconds=120, order=40, requestable=True)
def rollup_job(ctx: JobContext) -> dict:
    with Session(ctx.engine) as session:
        return refresh_rollup(session=session)

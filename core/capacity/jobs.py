"""The sidecar's capacity jobs: sync counts → evaluate, and the snapshot purge. They call the
same services as the console."""

import logging
from datetime import timedelta

from sqlmodel import Session

from base.config import get_settings
from core import settings_store
from core.capacity.evaluate import evaluate
from core.capacity.sync import purge_snapshots, sync_counts
from core.scheduling.jobs import JobContext, register_job
from core.wecom.client import WeComClient

log = logging.getLogger("capacity")

SYNC_JOB = "capacity.sync_counts"
# The demo syncs every minute so that a newcomer sees counts move; production every 10 minutes.
SYNC_INTERVAL_SECONDS = get_settings().CAPACITY_SYNC_INTERVAL_SECONDS
KEEP_SNAPSHOTS = timedelta(days=90)


def wecom_client(ctx: JobContext) -> WeComClient | None:
    settings = get_settings()
    if not settings.WECOM_CORP_ID or not settings.WECOM_SECRET:
        return None
    with Session(ctx.engine) as session:
        per_minute = settings_store.effective(session=session, key="wecom.calls_per_minute")
    return WeComClient(settings.WECOM_API_BASE, settings.WECOM_CORP_ID, settings.WECOM_SECRET, per_minute=per_minute)


@register_job(id=SYNC_JOB, interval_seconds=SYNC_INTERVAL_SECONDS, order=10, requestable=True)
def sync_job(ctx: JobContext) -> dict:
    client = wecom_client(ctx)
    if client is None:
        log.warning("WECOM_CORP_ID / WECOM_SECRET not set: customer counts are not synced")
        return {"skipped": "WECOM_CORP_ID/WECOM_SECRET not configured"}
    with client:
        return sync_counts(engine=ctx.engine, client=client, fence=ctx.fence).as_dict()


@register_job(id="capacity.evaluate", interval_seconds=60, order=20, requestable=True)
def evaluate_job(ctx: JobContext) -> dict:
    with Session(ctx.engine) as session:
        figures = evaluate(session=session)
        ctx.check_lease(session)
        session.commit()
    return figures


@register_job(id="capacity.purge_snapshots", interval_seconds=24 * 3600, order=91)
def purge_job(ctx: JobContext) -> dict:
    return {"removed": purge_snapshots(engine=ctx.engine, keep=KEEP_SNAPSHOTS)}

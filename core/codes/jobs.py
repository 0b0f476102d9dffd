"""The sidecar's contact-code jobs: keep codes in line with bindings (every
minute, and at once when a binding change asks), and check them against WeCom daily."""

import logging

from core.capacity.jobs import wecom_client
from core.codes.service import RECONCILE_JOB, SYNC_JOB
from core.codes.sync import reconcile_codes, sync_codes
from core.scheduling.jobs import JobContext, register_job

log = logging.getLogger("codes")


@register_job(id=SYNC_JOB, interval_seconds=60, order=15, requestable=True)
def sync_job(ctx: JobContext) -> dict:
    client = wecom_client(ctx)
    if client is None:
        log.warning("WECOM_CORP_ID / WECOM_SECRET not set: contact codes are not made")
        return {"skipped": "jobs.skipped_no_wecom"}  # a catalog key: the console shows it in words
    with client:
        return sync_codes(engine=ctx.engine, client=client, fence=ctx.fence).as_dict()


@register_job(id=RECONCILE_JOB, interval_seconds=24 * 3600, order=16, requestable=True)
def reconcile_job(ctx: JobContext) -> dict:
    """What WeCom really has, then the repairs that calls for."""
    client = wecom_client(ctx)
    if client is None:
        return {"skipped": "jobs.skipped_no_wecom"}  # a catalog key: the console shows it in words
    with client:
        checked = reconcile_codes(engine=ctx.engine, client=client, fence=ctx.fence).as_dict()
        return {**checked, "repair": sync_codes(engine=ctx.engine, client=client, fence=ctx.fence).as_dict()}

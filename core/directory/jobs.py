"""The sidecar's directory job: the accounts' WeCom member statuses, first of
all, so that no later job counts or alerts for a member who has left."""

import logging

from core.capacity.jobs import wecom_client
from core.directory.members import sync_members
from core.scheduling.jobs import JobContext, register_job

log = logging.getLogger("directory")

SYNC_MEMBERS_JOB = "directory.sync_members"


@register_job(id=SYNC_MEMBERS_JOB, interval_seconds=24 * 3600, order=5, requestable=True)
def sync_members_job(ctx: JobContext) -> dict:
    client = wecom_client(ctx)
    if client is None:
        log.warning("WECOM_CORP_ID / WECOM_SECRET not set: member statuses are not synced")
        return {"skipped": "jobs.skipped_no_wecom"}  # a catalog key: the console shows it in words
    with client:
        return sync_members(engine=ctx.engine, client=client, fence=ctx.fence).as_dict()

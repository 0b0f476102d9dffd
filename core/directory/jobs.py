"""The sidecar's directory jobs: the accounts' WeCom member statuses, first of
all, so that no later job counts or alerts for a member who has left; and the
departed members' customers awaiting transfer, at once when a member leaves."""

import logging

from core.capacity.jobs import wecom_client
from core.directory.members import UNASSIGNED_JOB, refresh_unassigned, sync_members
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


@register_job(id=UNASSIGNED_JOB, interval_seconds=24 * 3600, order=92, requestable=True)
def unassigned_job(ctx: JobContext) -> dict:
    """The departed members' customers awaiting transfer, read again: queued by
    the `change_contact` callback when a member leaves (the callback itself
    never waits for WeCom). Last in `--once` (the member sync already read them)
    and after every other job's first start."""
    client = wecom_client(ctx)
    if client is None:
        return {"skipped": "jobs.skipped_no_wecom"}  # a catalog key: the console shows it in words
    with client:
        return {"unassigned": refresh_unassigned(engine=ctx.engine, client=client, fence=ctx.fence)}

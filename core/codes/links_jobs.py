"""The sidecar's 获客链接 job (`codes.links`): links follow their codes every minute,
the quota is read hourly, the links' figures pulled daily (core/codes/links.py)."""

import logging

from core.capacity.jobs import wecom_client
from core.codes.links import run_links_job
from core.scheduling.jobs import JobContext, register_job

log = logging.getLogger("codes.links")

LINKS_JOB = "codes.links"


@register_job(id=LINKS_JOB, interval_seconds=60, order=16, requestable=True)
def links_job(ctx: JobContext) -> dict:
    client = wecom_client(ctx)
    if client is None:
        return {"skipped": "jobs.skipped_no_wecom"}  # a catalog key: the console shows it in words
    with client:
        return run_links_job(engine=ctx.engine, client=client, fence=ctx.fence)

"""The sidecar's alert job: deliver what the outbox holds (after capacity.evaluate wrote it)."""

import logging
import time
from datetime import datetime

from base.timeutil import display_zone
from core.alerts.outbox import deliver_due, quiet_wait
from core.scheduling.jobs import JobContext, register_job

log = logging.getLogger("alerts")


# As often as the count sync ticks: an alert it leads to waits at most one tick to go out.
@register_job(id="alerts.deliver", interval_seconds=15, order=30, requestable=True)
def deliver_job(ctx: JobContext) -> dict:
    time.sleep(quiet_wait(datetime.now(display_zone())))
    figures = deliver_due(engine=ctx.engine, fence=ctx.fence)
    if figures.errors:
        log.warning("alert delivery errors: %s", figures.errors)
    return figures.as_dict()

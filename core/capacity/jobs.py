"""The sidecar's capacity jobs: sync counts → evaluate, and the snapshot purge. They call the
same services as the console."""

import logging
import threading
from datetime import datetime, timedelta

from sqlmodel import Session

from base.config import get_settings
from base.timeutil import utcnow
from core import settings_store
from core.capacity.evaluate import evaluate
from core.capacity.sweep import SYNC_JOB, running_sweeps
from core.capacity.switch import switch_accounts
from core.capacity.sync import purge_snapshots, sync_counts
from core.capacity.usage import fast_growing
from core.capacity.watch import TICK_SECONDS, plan_sync, tick_budget, watch_rules
from core.scheduling.jobs import JobContext, register_job
from core.wecom.client import WeComClient

log = logging.getLogger("capacity")

KEEP_SNAPSHOTS = timedelta(days=90)
# The 7-day growth moves slowly and reading it costs an index seek per account: the
# accounts it makes watched closely are worked out again this often.
GROWTH_REFRESH = timedelta(minutes=10)


class _Growing:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at: datetime | None = None
        self._ids: set[int] = set()

    def get(self, session: Session, now: datetime) -> set[int]:
        with self._lock:
            if self._at is None or now - self._at >= GROWTH_REFRESH:
                self._ids, self._at = fast_growing(session=session, rules=watch_rules(session=session),
                                                   now=now), now
            return self._ids


growing_fast = _Growing()


def wecom_client(ctx: JobContext) -> WeComClient | None:
    settings = get_settings()
    if not settings.WECOM_CORP_ID or not settings.WECOM_SECRET:
        return None
    with Session(ctx.engine) as session:
        per_minute = settings_store.effective(session=session, key="wecom.calls_per_minute")
    return WeComClient(settings.WECOM_API_BASE, settings.WECOM_CORP_ID, settings.WECOM_SECRET, per_minute=per_minute)


@register_job(id=SYNC_JOB, interval_seconds=TICK_SECONDS, order=10, requestable=True)
def sync_job(ctx: JobContext) -> dict:
    """One tick of the risk-first sync (core.capacity.watch): the accounts due now,
    watched closely first, then those an operator's 立即同步客户数 waits for
    (core.capacity.sweep), within the tick's share of the per-minute pace."""
    client = wecom_client(ctx)
    if client is None:
        log.warning("WECOM_CORP_ID / WECOM_SECRET not set: customer counts are not synced")
        return {"skipped": "jobs.skipped_no_wecom"}  # a catalog key: the console shows it in words
    with client:
        with Session(ctx.engine) as session:
            now = utcnow()
            plan = plan_sync(session=session, rules=watch_rules(session=session),
                             budget=tick_budget(client.per_minute), growing=growing_fast.get(session, now),
                             requested=running_sweeps(session=session, now=now), now=now)
        figures = {"watched": plan.watched, "listed_watched": len(plan.hot), "listed_requested": len(plan.requested),
                   "listed_other": len(plan.cold), "waiting": plan.waiting}
        if not plan.account_ids:
            return figures
        return {**figures, **sync_counts(engine=ctx.engine, client=client, fence=ctx.fence,
                                         only=plan.account_ids).as_dict()}


# After the count sync, before the contact codes follow and the evaluation: an
# account the switch moved off is no longer serving when it is evaluated.
@register_job(id="capacity.switch", interval_seconds=30, order=12, requestable=True)
def switch_job(ctx: JobContext) -> dict:
    return switch_accounts(engine=ctx.engine, fence=ctx.fence)


# As often as the sync ticks: a count written by one tick is judged before the next.
@register_job(id="capacity.evaluate", interval_seconds=TICK_SECONDS, order=20, requestable=True)
def evaluate_job(ctx: JobContext) -> dict:
    with Session(ctx.engine) as session:
        figures = evaluate(session=session)
        ctx.check_lease(session)
        session.commit()
    return figures


@register_job(id="capacity.purge_snapshots", interval_seconds=24 * 3600, order=91)
def purge_job(ctx: JobContext) -> dict:
    return {"removed": purge_snapshots(engine=ctx.engine, keep=KEEP_SNAPSHOTS)}

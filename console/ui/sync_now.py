"""立即同步客户数: the button, and how far the latest sweep got (core.capacity.sweep).

The sweep runs in the sidecar at the WeCom pace, so the page never waits for it:
the progress below refreshes itself while the sweep runs, says about how long is
left, and says so plainly when no sidecar is running or WeCom is not configured
(then nothing is synced at all)."""

import streamlit as st

from base.config import get_settings
from base.timeutil import format_display
from console.ui.actions import showing_errors
from console.ui.context import db
from console.web.health import STALE_AFTER_SECONDS
from core.auth.permissions import Actor, Capability
from core.capacity import sweep as sweep_service
from core.scheduling import lease
from i18n import t

REFRESH_SECONDS = 5


def sync_now(actor: Actor, key: str) -> None:
    """The button for those who may ask for a sweep (checked again in core), then the progress."""
    if actor.can(Capability.manage_alerts) and st.button(t("capacity.sync_now"), key=key,
                                                          help=t("capacity.sweep.help")):
        with showing_errors():
            with db() as session:
                sweep_service.request_sweep(session=session, actor=actor)
            st.success(t("capacity.sync_queued"))
    with db() as session:
        progress = sweep_service.sweep_progress(session=session, actor=actor)
    if progress is None:
        return
    # Refreshed on its own while the sweep runs; a finished one is left as it is.
    st.fragment(_progress, run_every=None if progress.done else REFRESH_SECONDS)(actor, polling=not progress.done)


def _progress(actor: Actor, *, polling: bool) -> None:
    with db() as session:
        progress = sweep_service.sweep_progress(session=session, actor=actor)
        heartbeat = lease.heartbeat_age_seconds(session=session)
    if progress is None:
        return
    if polling and progress.done:
        # Done while the page was open: the whole page again, so its counts are the new ones.
        st.rerun()
    scope = t("capacity.sweep.scope_chain" if progress.sweep.branch_id is None else "capacity.sweep.scope_branch")
    at = format_display(progress.sweep.requested_at, "%H:%M:%S")
    if progress.done:
        st.caption(t("capacity.sweep.done", at=at, scope=scope, listed=f"{progress.listed:,}")
                   + (t("capacity.sweep.done_failed", failed=f"{progress.failed:,}") if progress.failed else ""))
        return
    settings = get_settings()
    if not settings.WECOM_CORP_ID or not settings.WECOM_SECRET:
        st.warning(t("capacity.sweep.no_wecom"))
    elif heartbeat is None or heartbeat > STALE_AFTER_SECONDS:
        st.warning(t("capacity.sweep.no_sidecar") if heartbeat is None else
                   t("capacity.sweep.sidecar_stale", seconds=int(heartbeat)))
    finished = progress.listed + progress.failed
    st.progress(finished / progress.total if progress.total else 0.0, text=t(
        "capacity.sweep.running", at=at, scope=scope, finished=f"{finished:,}", total=f"{progress.total:,}",
        minutes=progress.minutes_left, pace=f"{progress.per_minute:,}", watched=f"{progress.watched:,}"))
    if progress.failed:
        st.caption(t("capacity.sweep.failed_so_far", failed=f"{progress.failed:,}"))
    if not progress.sweep.picked:
        st.caption(t("capacity.sweep.queued"))

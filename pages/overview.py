import pandas as pd
import streamlit as st

from base.timeutil import utcnow
from console.ui.context import db, page_actor
from console.ui.freshness import age_text
from console.web.health import STALE_AFTER_SECONDS
from core import overview as overview_service
from core.auth.permissions import Capability
from core.capacity.freshness import chain_freshness
from core.directory import stores as store_service
from i18n import t

actor = page_actor(Capability.view_directory)
st.title(t("overview.title"))

with db() as session:
    figures = overview_service.overview(session=session, actor=actor)
    branches = store_service.branch_summaries(session=session, actor=actor)
    needs_action = overview_service.needs_action(session=session, actor=actor)
    counts = chain_freshness(session=session, actor=actor)


def percent(value: float | None) -> str:
    return t("common.none") if value is None else f"{value:.1%}"


row1 = st.columns(4)
row1[0].metric(t("overview.stores"), f"{figures.stores:,}")
row1[1].metric(t("overview.open_stores"), f"{figures.open_stores:,}")
row1[2].metric(t("overview.current_bindings"), f"{figures.current_bindings:,}")
row1[3].metric(t("overview.binding_rate"), percent(figures.binding_rate), help=t("overview.binding_rate_help"))
row2 = st.columns(4)
row2[0].metric(t("overview.pending_review"), f"{figures.pending_review:,}")
row2[1].metric(t("overview.visible_entries"), f"{figures.visible_entries:,}", help=t("overview.visible_entries_help"))
row2[2].metric(t("overview.near_capacity"), f"{figures.accounts_near_capacity:,}",
               help=t("overview.near_capacity_help", pct=figures.warn_pct))
age = figures.heartbeat_age_seconds
row2[3].metric(t("overview.heartbeat"),
               t("overview.heartbeat_missing") if age is None else t("overview.heartbeat_age", seconds=int(age)))
if age is not None and age > STALE_AFTER_SECONDS:
    st.warning(t("overview.heartbeat_stale", seconds=int(age)))
# The tile counts by the last synced counts: how old they are, at a glance.
if counts.oldest is None and counts.accounts:
    st.warning(t("overview.counts_never", accounts=f"{counts.accounts:,}"))
elif counts.oldest is not None:
    freshness_line = t("overview.counts_fresh", accounts=f"{counts.accounts:,}",
                       oldest=age_text((utcnow() - counts.oldest).total_seconds(), stale=False))
    if counts.stale:
        st.warning(freshness_line + t("overview.counts_stale", stale=f"{counts.stale:,}"))
    else:
        st.caption(freshness_line)

st.subheader(t("overview.needs_action"))
if needs_action.items:
    st.dataframe(pd.DataFrame([{
        t("stores.col.crm_store_id"): item.crm_store_id, t("stores.col.name"): item.store_name,
        t("stores.col.wecom_userid"): item.wecom_userid,
        t("overview.needs_action_reason"): t(f"entry_reason.{item.reason}"),
    } for item in needs_action.items]), hide_index=True, width="stretch")
    if needs_action.cut:
        st.caption(t("overview.needs_action_cut", total=needs_action.total, listed=len(needs_action.items)))
    else:
        st.caption(t("overview.needs_action_total", total=needs_action.total))
else:
    st.caption(t("overview.needs_action_none"))

st.subheader(t("overview.branches"))
st.dataframe(pd.DataFrame([{
    t("stores.col.branch_code"): b.code, t("stores.col.branch_name"): b.name, t("stores.col.stores"): b.stores,
    t("stores.col.open_stores"): b.open_stores, t("stores.col.bound_open_stores"): b.bound_open_stores,
    t("stores.col.binding_rate"): percent(b.binding_rate),
} for b in branches]), hide_index=True, width="stretch")

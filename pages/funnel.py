from datetime import datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from base.timeutil import display_zone
from console.ui.actions import showing_errors
from console.ui.context import db, page_actor
from core.auth.permissions import Capability
from core.directory import stores as store_service
from core.exports import to_csv_bytes, to_xlsx_bytes
from core.funnel import event_files, intake, queries, rollup
from i18n import t

actor = page_actor(Capability.view_metrics)
st.title(t("funnel.title"))

STEPS = list(intake.FUNNEL_STEPS)
RATES = (("binding_rate", "funnel.kpi.binding_rate"), ("entry_ctr", "funnel.kpi.entry_ctr"),
         ("add_click_rate", "funnel.kpi.add_click_rate"), ("add_rate", "funnel.kpi.add_rate"))


def pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def shown_pct(value: float | None) -> str:
    return t("common.none") if value is None else f"{value:.1%}"


def rate_of(figures: queries.ScopeFigures, name: str) -> float | None:
    return figures.binding_rate if name == "binding_rate" else getattr(figures.funnel, name)


def figures_frame(rows: list[queries.ScopeFigures], stores: bool) -> pd.DataFrame:
    records = []
    for row in rows:
        record = ({t("funnel.col.crm_store_id"): row.key, t("funnel.col.store_name"): row.name,
                   t("funnel.col.status"): t(f"store_status.{row.status}")} if stores else
                  {t("funnel.col.branch_code"): row.key, t("funnel.col.branch_name"): row.name,
                   t("funnel.col.open_stores"): row.open_stores, t("funnel.col.bound_stores"): row.bound_stores})
        if not stores:
            record[t("funnel.col.binding_rate")] = pct(row.binding_rate)
        for step in STEPS:
            record[t(f"funnel.step.{step}")] = row.funnel.count(step)
        record[t("funnel.col.entry_ctr")] = pct(row.funnel.entry_ctr)
        record[t("funnel.col.add_click_rate")] = pct(row.funnel.add_click_rate)
        record[t("funnel.col.add_rate")] = pct(row.funnel.add_rate)
        records.append(record)
    return pd.DataFrame(records)


today = datetime.now(display_zone()).date()
with db() as session:
    branches = store_service.visible_branches(session=session, actor=actor)
cols = st.columns([1, 1, 2, 2, 1])
start = cols[0].date_input(t("common.from"), value=today - timedelta(days=29), key="funnel_from")
end = cols[1].date_input(t("common.to"), value=today, key="funnel_to")
branch_options = {b.id: f"{b.code} {b.name}" for b in branches}
if actor.branch_scope is None:
    branch_options = {None: t("common.all"), **branch_options}
branch_id = cols[2].selectbox(t("funnel.filter.branch"), list(branch_options), format_func=branch_options.get,
                              key="funnel_branch")
store_options: dict[int | None, str] = {None: t("funnel.filter.all_stores")}
if branch_id is not None:
    with db() as session:
        branch_stores, _ = store_service.search_stores(session=session, actor=actor,
                                                       filters=store_service.StoreFilter(branch_id=branch_id),
                                                       limit=100_000)
    store_options.update({r.store_id: f"{r.crm_store_id} {r.name}" for r in branch_stores})
store_id = cols[3].selectbox(t("funnel.filter.store"), list(store_options), format_func=store_options.get,
                             key="funnel_store")
platform_options = {None: t("common.all"), **{p: t(f"platform.{p}") for p in intake.PLATFORMS}}
platform = cols[4].selectbox(t("funnel.filter.platform"), list(platform_options), format_func=platform_options.get,
                             key="funnel_platform")
filters = queries.MetricsFilter(start, end, branch_id, store_id, platform)
branch_codes = {b.id: b.code for b in branches}
store_codes = {r.store_id: r.crm_store_id for r in branch_stores} if branch_id is not None else {}

with showing_errors(stop=True), db() as session:
    pending = rollup.pending(session=session)
    zone_change = rollup.zone_change(session=session)
    zone = rollup.recorded_zone(session=session)
    current = queries.overall(session=session, actor=actor, filters=filters)
    before = queries.previous_period(session=session, actor=actor, filters=filters)
    trend = queries.daily(session=session, actor=actor, filters=filters)
    branch_rows = [] if store_id is not None else queries.by_branch(session=session, actor=actor, filters=filters)
    unattributed = queries.unattributed_adds(session=session, actor=actor, filters=filters)

if pending.facts >= rollup.PENDING_COUNT_CAP:
    st.info(t("funnel.pending_many", facts=rollup.PENDING_COUNT_CAP))
elif pending.facts:
    st.info(t("funnel.pending", facts=pending.facts))
if pending.moved_stores:
    st.info(t("funnel.pending_moves", stores=pending.moved_stores))
if zone_change:
    st.warning(t("funnel.zone_changed", recorded=zone_change.recorded, configured=zone_change.configured))

tiles = st.columns(5)
users_now = current.funnel.count("order_result_view")
users_before = before.funnel.count("order_result_view")
# With nothing in the previous period a change says nothing either.
tiles[0].metric(t("funnel.kpi.order_result_users"), f"{users_now:,}",
                delta=t("funnel.delta_users", value=users_now - users_before) if users_before else None)
for tile, (name, label) in zip(tiles[1:], RATES, strict=True):
    now_value, before_value = rate_of(current, name), rate_of(before, name)
    # The binding rate is as of now; comparing it with itself says nothing.
    delta = None if name == "binding_rate" or now_value is None or before_value is None else \
        t("funnel.delta_points", value=(now_value - before_value) * 100)
    tile.metric(t(label), shown_pct(now_value), delta=delta, help=t(f"{label}_help"))

st.caption(t("funnel.caveat", zone=zone))
st.caption(t("funnel.add_rate_caveat"))
if current.funnel.count("added"):
    st.caption(t("funnel.attribution", added=current.funnel.count("added"), by_state=current.funnel.added_by_state))
if unattributed:
    st.caption(t("funnel.unattributed", count=unattributed))

funnel_frame = pd.DataFrame({
    "order": range(len(STEPS)),
    t("funnel.chart.step"): [t(f"funnel.step.{s}") for s in STEPS],
    t("funnel.chart.users"): [current.funnel.count(s) for s in STEPS],
}).dropna()
step_title, users_title, day_title = t("funnel.chart.step"), t("funnel.chart.users"), t("funnel.chart.day")
left, right = st.columns(2)
with left:
    st.subheader(t("funnel.chart.funnel"))
    funnel_chart = alt.Chart(funnel_frame).mark_bar().encode(
        x=alt.X(f"{users_title}:Q", title=users_title),
        y=alt.Y(f"{step_title}:N", sort=alt.EncodingSortField(field="order"), title=None),
        tooltip=[step_title, users_title])
    labels = funnel_chart.mark_text(align="left", dx=3).encode(text=f"{users_title}:Q")
    st.altair_chart(funnel_chart + labels, key="funnel_chart")

trend_frame = pd.DataFrame([{day_title: day.isoformat(), **{t(f"funnel.step.{s}"): f.count(s) for s in STEPS}}
                            for day, f in trend])
with right:
    st.subheader(t("funnel.chart.trend"))
    long = trend_frame.melt(id_vars=[day_title], var_name=step_title, value_name=users_title).dropna()
    st.altair_chart(alt.Chart(long).mark_line(point=True).encode(
        x=alt.X(f"{day_title}:T", title=None, axis=alt.Axis(format="%m-%d")),
        y=alt.Y(f"{users_title}:Q", title=users_title),
        color=alt.Color(f"{step_title}:N", sort=[t(f"funnel.step.{s}") for s in STEPS], title=None),
        tooltip=[day_title, step_title, users_title]), key="trend_chart")
    if end >= today:
        st.caption(t("funnel.today_partial"))


def downloads(frame: pd.DataFrame, table: str, title_key: str, shown: queries.MetricsFilter, key: str) -> None:
    """xlsx and CSV (utf-8-sig) of a table, named after and headed by the filters applied."""
    branch_label = branch_options.get(shown.branch_id) if shown.branch_id is not None else t("common.all")
    store_label = store_options.get(shown.store_id) if shown.store_id is not None else t("funnel.filter.all_stores")
    title = t(title_key)
    header = [(t("funnel.export.table"), title),
              (t("funnel.export.range"), t("funnel.export.range_value", start=shown.start.isoformat(),
                                           end=shown.end.isoformat(), zone=zone)),
              (t("funnel.export.branch"), branch_label), (t("funnel.export.store"), store_label),
              (t("funnel.export.platform"), platform_options[shown.platform])]
    name = queries.export_name(table, shown, branch_code=branch_codes.get(shown.branch_id),
                               crm_store_id=store_codes.get(shown.store_id))
    xlsx_column, csv_column = st.columns(2)
    xlsx_column.download_button(t("common.download_xlsx"),
                                to_xlsx_bytes(frame, title, header=header, header_sheet=t("funnel.export.filters")),
                                file_name=f"{name}.xlsx", key=f"{key}_xlsx", on_click="ignore",
                                mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    csv_column.download_button(t("common.download_csv"), to_csv_bytes(frame, header=header),
                               file_name=f"{name}.csv", mime="text/csv", key=f"{key}_csv", on_click="ignore")


if branch_rows:
    st.subheader(t("funnel.branches"))
    branch_frame = figures_frame(branch_rows, stores=False)
    st.dataframe(branch_frame, hide_index=True, width="stretch")
    downloads(branch_frame, "branches", "funnel.branches", filters, "funnel_branches_dl")

    drill_options = {None: t("funnel.drill_none"), **{r.branch_id: f"{r.key} {r.name}" for r in branch_rows}}
    default = 1 if len(branch_rows) == 1 else 0
    drill = st.selectbox(t("funnel.drill"), list(drill_options), format_func=drill_options.get, index=default,
                         key="funnel_drill")
    if drill is not None:
        drilled = queries.MetricsFilter(start, end, drill, None, platform)
        with showing_errors():
            with db() as session:
                store_rows = queries.by_store(session=session, actor=actor, filters=drilled)
            st.subheader(t("funnel.stores"))
            store_frame = figures_frame(store_rows, stores=True)
            st.dataframe(store_frame, hide_index=True, width="stretch")
            downloads(store_frame, "stores", "funnel.stores", drilled, "funnel_stores_dl")

with st.expander(t("funnel.daily_table")):
    st.dataframe(trend_frame, hide_index=True, width="stretch")
    downloads(trend_frame, "daily", "funnel.daily_table", filters, "funnel_daily_dl")

if actor.can(Capability.import_events):
    with st.expander(t("funnel.import")):
        st.caption(t("funnel.import_help"))
        upload = st.file_uploader(t("funnel.import"), type=["csv", "jsonl", "ndjson", "json"], key="funnel_upload")
        if upload is not None and st.button(t("funnel.import_button"), type="primary", key="funnel_import"):
            bar = st.progress(0.0)
            with showing_errors():
                result = event_files.import_event_file(
                    session_factory=db, actor=actor, stream=upload, filename=upload.name,
                    progress=lambda lines, share: bar.progress(share, text=t("funnel.import_progress", lines=lines,
                                                                              percent=share)))
                st.success(t("funnel.import_done", lines=result.lines, accepted=result.accepted,
                             duplicates=result.duplicates, rejected=len(result.problems)))
                if result.problems:
                    st.warning(t("funnel.import_problems"))
                    st.dataframe(pd.DataFrame([{t("funnel.col.line"): p.line, t("funnel.col.reason"):
                                                t(p.key, **p.params)} for p in result.problems[:500]]),
                                 hide_index=True)

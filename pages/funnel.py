import time
from datetime import datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from base.timeutil import display_zone
from console.ui.actions import showing_errors
from console.ui.context import db, page_actor
from console.ui.widgets import table
from core.auth.permissions import Capability
from core.codes import links
from core.directory import stores as store_service
from core.exports import file_name, to_csv_bytes, to_xlsx_bytes
from core.funnel import event_files, intake, queries, rollup
from i18n import t

actor = page_actor(Capability.view_metrics)
st.title(t("funnel.title"))

STEPS = list(intake.FUNNEL_STEPS)
RANKING_KEPT_SECONDS = 300
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
# Ending yesterday: today's partial day would make every trend plunge at its end.
yesterday = today - timedelta(days=1)
start = cols[0].date_input(t("common.from"), value=yesterday - timedelta(days=29), key="funnel_from")
end = cols[1].date_input(t("common.to"), value=yesterday, key="funnel_to", help=t("funnel.to_help"))
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

def bar_label(users: int | None, rate: float | None, first: bool) -> str:
    if users is None:
        return ""
    if first:
        return t("funnel.chart.label_first", users=users)
    return t("funnel.chart.label", users=users, rate=shown_pct(rate))


counts = [current.funnel.count(s) for s in STEPS]
funnel_frame = pd.DataFrame({
    "order": range(len(STEPS)),
    t("funnel.chart.step"): [t(f"funnel.step.{s}") for s in STEPS],
    t("funnel.chart.users"): counts,
    # Step-to-step conversion, written beside each bar.
    "label": [bar_label(users, rate, i == 0)
              for i, (users, rate) in enumerate(zip(counts, current.funnel.conversions(STEPS), strict=True))],
}).dropna()
step_title, users_title, day_title = t("funnel.chart.step"), t("funnel.chart.users"), t("funnel.chart.day")
left, right = st.columns(2)
with left:
    st.subheader(t("funnel.chart.funnel"))
    funnel_chart = alt.Chart(funnel_frame).mark_bar().encode(
        x=alt.X(f"{users_title}:Q", title=users_title),
        y=alt.Y(f"{step_title}:N", sort=alt.EncodingSortField(field="order"), title=None),
        tooltip=[step_title, users_title, alt.Tooltip("label:N", title=t("funnel.chart.conversion"))])
    labels = funnel_chart.mark_text(align="left", dx=3).encode(text="label:N")
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


def downloads(frame: pd.DataFrame, title_key: str, shown: queries.MetricsFilter, key: str) -> None:
    """xlsx and CSV (utf-8-sig) of a table, named after and headed by the filters applied."""
    branch_label = branch_options.get(shown.branch_id) if shown.branch_id is not None else t("common.all")
    store_label = store_options.get(shown.store_id) if shown.store_id is not None else t("funnel.filter.all_stores")
    title = t(title_key)
    header = [(t("funnel.export.table"), title),
              (t("funnel.export.range"), t("funnel.export.range_value", start=shown.start.isoformat(),
                                           end=shown.end.isoformat(), zone=zone)),
              (t("funnel.export.branch"), branch_label), (t("funnel.export.store"), store_label),
              (t("funnel.export.platform"), platform_options[shown.platform])]
    # A filter left at "all" narrows nothing: on the 筛选条件 sheet, not in the name.
    chosen = [label for label, narrows in ((branch_label, shown.branch_id is not None),
                                           (store_label, shown.store_id is not None),
                                           (platform_options[shown.platform], shown.platform is not None)) if narrows]
    name = file_name(t("funnel.title"), title, t("funnel.export.range_name", start=shown.start.isoformat(),
                                                  end=shown.end.isoformat()), *chosen)
    xlsx_column, csv_column = st.columns(2)
    # Made when clicked, not on every rerun: a workbook of a branch's stores takes a noticeable while.
    xlsx_column.download_button(t("common.download_xlsx"),
                                lambda: to_xlsx_bytes(frame, title, header=header,
                                                      header_sheet=t("funnel.export.filters")),
                                file_name=f"{name}.xlsx", key=f"{key}_xlsx", on_click="ignore",
                                mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    csv_column.download_button(t("common.download_csv"), lambda: to_csv_bytes(frame, header=header),
                               file_name=f"{name}.csv", mime="text/csv", key=f"{key}_csv", on_click="ignore")


if branch_rows:
    st.subheader(t("funnel.branches"))
    # The total is the chain's (or the chosen branch's) own distinct users, not a sum of the rows.
    total = queries.ScopeFigures(t("funnel.total"), "", current.open_stores, current.bound_stores, current.funnel)
    branch_frame = figures_frame(branch_rows + ([total] if len(branch_rows) > 1 else []), stores=False)
    table(branch_frame)
    if len(branch_rows) > 1:
        st.caption(t("funnel.total_caveat"))
    downloads(branch_frame, "funnel.branches", filters, "funnel_branches_dl")

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
            table(store_frame)
            downloads(store_frame, "funnel.stores", drilled, "funnel_stores_dl")

with db() as session:
    link_rows = links.link_figures(session=session, actor=actor, start=start, end=end, branch_id=branch_id,
                                   store_id=store_id)
if link_rows:
    st.subheader(t("links.funnel.title"))
    st.caption(t("links.funnel.caption"))
    per_store = branch_id is not None or actor.branch_scope is not None
    key_col, name_col = ("crm_store_id", "store_name") if per_store else ("branch_code", "branch_name")
    st.dataframe(pd.DataFrame([{
        t(f"links.funnel.col.{key_col}"): r.key, t(f"links.funnel.col.{name_col}"): r.name,
        t("links.funnel.col.clicks"): r.clicks, t("links.funnel.col.new_customers"): r.new_customers,
    } for r in link_rows]), hide_index=True, width="stretch")



def ranking_frame(rows: list[queries.ScopeFigures]) -> pd.DataFrame:
    return pd.DataFrame([{
        # The rate first after the store: half a page wide, the last columns scroll out of sight.
        t("funnel.col.crm_store_id"): r.key, t("funnel.col.store_name"): r.name,
        t("funnel.col.add_click_rate"): pct(r.funnel.add_click_rate),
        t("funnel.step.guide_view"): r.funnel.count("guide_view"),
        t("funnel.step.add_click"): r.funnel.count("add_click"),
        t("funnel.col.branch"): branch_codes.get(r.branch_id, ""),
    } for r in rows])


if store_id is None:
    st.subheader(t("funnel.ranking"), help=t("funnel.ranking.help"))
# Counted store by store over the whole range: seconds at tens of thousands of stores, so on request.
if store_id is None and st.toggle(t("funnel.ranking.show"), key="funnel_rank_show"):
    size_col, views_col = st.columns(2)
    size = int(size_col.number_input(t("funnel.ranking.size"), min_value=1, max_value=50, value=10,
                                     key="funnel_rank_size"))
    min_views = int(views_col.number_input(t("funnel.ranking.min_views"), min_value=1, max_value=100_000,
                                           value=20, step=10, key="funnel_rank_min"))
    # Counted again when the filter changes or after a few minutes, not on every rerun of the page.
    asked = (actor.branch_scope, filters, size, min_views)
    kept = st.session_state.get("funnel_rank_kept")
    if kept is None or kept[0] != asked or time.monotonic() - kept[1] > RANKING_KEPT_SECONDS:
        kept = None
        with showing_errors(), st.spinner(t("funnel.ranking.counting")), db() as session:
            kept = (asked, time.monotonic(), queries.store_ranking(session=session, actor=actor, filters=filters,
                                                                   size=size, min_guide_views=min_views))
        st.session_state["funnel_rank_kept"] = kept
    if kept is not None:
        ranking = kept[2]
        if not ranking.ranked:
            st.caption(t("funnel.ranking.none", minimum=min_views))
        else:
            st.caption(t("funnel.ranking.ranked", ranked=ranking.ranked, minimum=min_views))
            top_col, bottom_col = st.columns(2)
            top_col.markdown(f"**{t('funnel.ranking.top', count=len(ranking.top))}**")
            with top_col:
                table(ranking_frame(ranking.top))
            if ranking.bottom:
                bottom_col.markdown(f"**{t('funnel.ranking.bottom', count=len(ranking.bottom))}**")
                with bottom_col:
                    table(ranking_frame(ranking.bottom))

with st.expander(t("funnel.daily_table")):
    table(trend_frame)
    downloads(trend_frame, "funnel.daily_table", filters, "funnel_daily_dl")

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
                             duplicates=result.duplicates, rejected=result.rejected))
                if result.problems:
                    st.warning(t("funnel.import_problems", shown=len(result.problems), total=result.rejected))
                    st.dataframe(pd.DataFrame([{t("funnel.col.line"): p.line, t("funnel.col.reason"):
                                                t(p.key, **p.params)} for p in result.problems]),
                                 hide_index=True)

import altair as alt
import pandas as pd
import streamlit as st

from base.problems import Problem
from base.timeutil import format_display, to_display
from console.ui.actions import showing_errors
from console.ui.context import db, page_actor
from console.ui.freshness import count_age
from console.ui.records import figures_text, job_name
from console.ui.sync_now import sync_now
from console.ui.text import md
from console.ui.widgets import download_buttons, page_window, pager, table
from core.auth.permissions import Capability
from core.bindings import standby
from core.capacity import usage as usage_service
from core.capacity.evaluate import thresholds
from core.capacity.watch import Freshness, watch_rules
from core.directory.jobs import SYNC_MEMBERS_JOB
from core.scheduling import jobs, lease
from i18n import error_text, t

actor = page_actor(Capability.view_directory)
st.title(t("capacity.title"))


with db() as session:
    branches = usage_service.visible_branches(session=session, actor=actor)
    levels = thresholds(session=session)
    watching = watch_rules(session=session)

left, middle, right = st.columns([2, 2, 1])
branch_options = [None] + [branch_id for branch_id, _code, _name in branches]
branch_names = {branch_id: f"{code} {name}" for branch_id, code, name in branches}
if actor.branch_scope is None:
    branch_id = left.selectbox(t("capacity.branch_filter"), branch_options, key="capacity_branch",
                               format_func=lambda b: t("common.all") if b is None else branch_names[b])
else:
    branch_id = actor.branch_scope
    left.text_input(t("capacity.branch_filter"), branch_names.get(branch_id, ""), disabled=True)
sort = middle.selectbox(t("capacity.sort"), ["risk", "days_to_full", "growth"], key="capacity_sort",
                        format_func=lambda key: t(f"capacity.sort.{key}"))
only_over = right.checkbox(t("capacity.only_over"), key="capacity_only_over")

filters = usage_service.UsageFilter(branch_id=branch_id, at_least_pct=levels.warn if only_over else None,
                                    sort=sort)
offset, limit = page_window("capacity_list")
# The trend's choice lists the first accounts of the list; the gauges and, usually, the shown page are among them.
TREND_CHOICES = 500
with showing_errors(stop=True), db() as session:
    summary = usage_service.usage_summary(session=session, actor=actor, branch_id=branch_id,
                                          levels=(levels.warn, levels.critical, levels.full))
    first = usage_service.account_usage(session=session, actor=actor, filters=filters, limit=TREND_CHOICES)
    shown = first[offset:offset + limit] if offset + limit <= len(first) or len(first) < TREND_CHOICES else \
        usage_service.account_usage(session=session, actor=actor, filters=filters, offset=offset, limit=limit)
    total = summary.accounts if not only_over else summary.at_levels[levels.warn]
    ready = standby.switch_ready(session=session, actor=actor, account_ids=[r.account_id for r in shown])

metrics = st.columns(5)
metrics[0].metric(t("capacity.metric.accounts"), f"{summary.accounts:,}")
metrics[1].metric(t("capacity.metric.warn", pct=levels.warn), f"{summary.at_levels[levels.warn]:,}")
metrics[2].metric(t("capacity.metric.critical", pct=levels.critical), f"{summary.at_levels[levels.critical]:,}")
metrics[3].metric(t("capacity.metric.full"), f"{summary.at_levels[levels.full]:,}")
metrics[4].metric(t("capacity.metric.sync_errors"), f"{summary.sync_errors:,}")
cold_minutes = max(1, round(watching.cold_interval / 60))
st.caption(t("capacity.watch.summary", hot=f"{summary.watched:,}", band=watching.band,
             growth=watching.fast_growth, minutes=cold_minutes))
if summary.stale:
    st.warning(t("capacity.watch.stale_summary", count=f"{summary.stale:,}"))


def row_age(row: usage_service.AccountUsage) -> str:
    return count_age(Freshness(row.watched, row.count_age_seconds, row.stale))


RISK_COLUMNS = {"userid": 90, "name": 90, "branch": 64, "store": 90, "serving": 56, "standby": 70, "count": 56,
                "count_age": 120, "limit": 64, "growth": 50, "days_to_full": 64, "sync_error": 64}


def usage_frame(rows: list[usage_service.AccountUsage], ready: dict[int, bool]) -> pd.DataFrame:
    return pd.DataFrame([{
        t("capacity.col.userid"): r.userid, t("capacity.col.name"): r.name,
        t("capacity.col.branch"): r.branch_name or "", t("capacity.col.store"): r.store_name or "",
        t("capacity.col.serving"): t("common.yes") if r.serving else t("common.no"),
        t("capacity.col.standby"): "" if r.account_id not in ready else
        t("standby.switch_ready" if ready[r.account_id] else "standby.no_standby"),
        t("capacity.col.count"): r.customer_count, t("capacity.col.count_age"): row_age(r),
        t("capacity.col.limit"): r.capacity_limit,
        t("capacity.col.usage"): round(r.pct, 1),
        t("capacity.col.growth"): None if r.growth_per_day is None else round(r.growth_per_day, 1),
        t("capacity.col.days_to_full"): None if r.days_to_full is None else round(r.days_to_full, 1),
        t("capacity.col.sync_error"): error_text(Problem.decode(r.sync_error)) if r.sync_error else "",
    } for r in rows])


def whole_list() -> pd.DataFrame:
    """Every account of the filter, for a download: read when the button is clicked."""
    with db() as session:
        rows = usage_service.account_usage(session=session, actor=actor, filters=filters)
        return usage_frame(rows, standby.switch_ready(session=session, actor=actor,
                                                      account_ids=[r.account_id for r in rows]))


if not first:
    st.info(t("capacity.no_accounts"))
else:
    st.subheader(t("capacity.gauges"))
    columns = st.columns(2)
    for number, row in enumerate(first[:12]):
        with columns[number % 2]:
            st.progress(min(row.pct / 100, 1.0), text=md(
                "capacity.gauge_label", name=row.name or row.userid, userid=row.userid,
                branch=row.branch_name or t("common.none"), count=f"{row.customer_count:,}",
                limit=f"{row.capacity_limit:,}") + f" · {row.pct:.1f}% · {row_age(row)}")
            if row.customer_count >= row.capacity_limit:
                st.caption(t("capacity.gauge_full" if row.serving else "capacity.gauge_full_replaced"))
            elif row.days_to_full is None:
                st.caption(t("capacity.gauge_no_forecast"))
            else:
                st.caption(t("capacity.gauge_forecast", growth=f"{row.growth_per_day or 0:.1f}",
                             days=f"{row.days_to_full:.1f}"))

    st.subheader(t("capacity.risk_list"))
    # Widths that keep all 13 columns inside 1440 px; a cut text shows whole on hover.
    table(usage_frame(shown, ready), column_config={
        **{t(f"capacity.col.{name}"): st.column_config.Column(width=width) for name, width in RISK_COLUMNS.items()},
        t("capacity.col.usage"): st.column_config.ProgressColumn(format="%.1f%%", min_value=0, max_value=100,
                                                                 width=90)})
    pager(total, "capacity_list")
    download_buttons(whole_list, t("capacity.title"), [
        (t("capacity.branch_filter"), branch_names.get(branch_id, t("common.all"))),
        *([(t("capacity.only_over"), t("common.yes"))] if only_over else [])], "capacity_download")

    st.subheader(t("capacity.trend"))
    by_id = {r.account_id: r for r in first}
    chosen = st.selectbox(t("capacity.trend_account"), list(by_id), key="capacity_trend_account",
                          format_func=lambda a: f"{by_id[a].userid} · {by_id[a].name} · {by_id[a].pct:.1f}%")
    with showing_errors():
        with db() as session:
            trend = usage_service.account_trend(session=session, actor=actor, account_id=chosen)
        if not trend.points:
            st.caption(t("capacity.trend_none"))
        else:
            series, actual = t("capacity.trend.series"), t("capacity.trend.actual")
            forecast = t("capacity.trend.forecast")
            time_col, count_col = t("capacity.trend.time"), t("capacity.trend.count")
            data = [{time_col: to_display(at), count_col: count, series: actual} for at, count in trend.points]
            usage = trend.usage
            if usage.days_to_full and usage.synced_at:
                # The forecast: a straight line from now at the 7-day growth until the limit.
                last = to_display(usage.synced_at)
                data += [{time_col: last, count_col: usage.customer_count, series: forecast},
                         {time_col: last + pd.Timedelta(days=min(usage.days_to_full, 60)),
                          count_col: min(usage.capacity_limit,
                                         usage.customer_count + usage.growth_per_day * min(usage.days_to_full, 60)),
                          series: forecast}]
            chart = alt.Chart(pd.DataFrame(data)).mark_line(point=True).encode(
                x=alt.X(f"{time_col}:T", title=time_col, axis=alt.Axis(format="%m-%d %H:%M")),
                y=alt.Y(f"{count_col}:Q", title=count_col),
                color=alt.Color(f"{series}:N", title=series), strokeDash=alt.StrokeDash(f"{series}:N", legend=None))
            limit_rule = alt.Chart(pd.DataFrame({count_col: [usage.capacity_limit]})).mark_rule(
                color="red").encode(y=f"{count_col}:Q")
            st.altair_chart(chart + limit_rule, key="capacity_trend_chart")
            if usage.customer_count >= usage.capacity_limit:
                st.caption(t("capacity.gauge_full"))
            elif usage.days_to_full is None:
                st.caption(t("capacity.gauge_no_forecast"))
            else:
                st.caption(t("capacity.gauge_forecast", growth=f"{usage.growth_per_day or 0:.1f}",
                             days=f"{usage.days_to_full:.1f}"))

st.subheader(t("capacity.jobs"))
with db() as session:
    age = lease.heartbeat_age_seconds(session=session)
    history = jobs.runs_by_job(session=session, per_job=10)
    pending = jobs.pending_request_ids(session=session)
st.caption(t("capacity.jobs.heartbeat_missing") if age is None else
           t("capacity.jobs.heartbeat", age=t("capacity.jobs.heartbeat_age", seconds=int(age))))
sync_now(actor, "capacity_sync_now")
if actor.can(Capability.manage_alerts):
    if SYNC_MEMBERS_JOB in pending:
        st.caption(t("capacity.sync_pending"))
    elif st.button(t("job.directory.sync_members"), key="capacity_sync_members"):
        with showing_errors():
            with db() as session:
                jobs.request_run(session=session, actor=actor, job_id=SYNC_MEMBERS_JOB)
            st.success(t("capacity.sync_queued"))


def runs_frame(runs) -> pd.DataFrame:
    return pd.DataFrame([{
        t("capacity.jobs.col.job"): job_name(run.job_id),
        t("capacity.jobs.col.started"): format_display(run.started_at, "%Y-%m-%d %H:%M:%S"),
        t("capacity.jobs.col.finished"): format_display(run.finished_at, "%Y-%m-%d %H:%M:%S"),
        t("capacity.jobs.col.outcome"): t(f"job_outcome.{run.outcome}"),
        t("capacity.jobs.col.holder"): run.holder,
        t("capacity.jobs.col.figures"): figures_text(run.figures_json),
        t("capacity.jobs.col.error"): error_text(Problem.decode(run.error)) if run.error else "",
    } for run in runs])


def in_scope(frame: pd.DataFrame) -> pd.DataFrame:
    """A branch-scoped user sees when the jobs ran, not their figures: those count the whole chain."""
    return frame if actor.branch_scope is None else frame.drop(columns=[t("capacity.jobs.col.figures")])


if history:
    st.caption(t("capacity.jobs.latest"))
    st.dataframe(in_scope(runs_frame([runs[0] for runs in history.values()])), hide_index=True, width="stretch")
    chosen_job = st.selectbox(t("capacity.jobs.history_of"), list(history), key="capacity_jobs_history",
                              format_func=job_name)
    st.dataframe(in_scope(runs_frame(history[chosen_job])), hide_index=True, width="stretch")
else:
    st.caption(t("capacity.jobs.none"))

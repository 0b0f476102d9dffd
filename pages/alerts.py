from datetime import UTC, datetime

import httpx
import pandas as pd
import streamlit as st

from base.config import get_settings
from base.problems import Problem
from base.timeutil import display_zone, format_display
from console.ui.actions import showing_errors
from console.ui.context import db, page_actor
from console.ui.text import md
from console.ui.widgets import page_window, pager
from core.alerts import channels as channel_service
from core.alerts import log as alert_log
from core.auth.permissions import Capability
from db.models import AlertLevel
from demo.simulator import fetch_app_inbox, fetch_inbox
from i18n import error_text, t

actor = page_actor(Capability.manage_alerts)
st.title(t("alerts.title"))

status_column, kind_column = st.columns(2)
with status_column:
    status = st.segmented_control(t("alerts.status_filter"), ["open", "unacknowledged", "all"], default="open",
                                  key="alerts_status", help=t("alerts.status_help"),
                                  format_func=lambda s: t(f"alerts.status.{s}")) or "open"
with kind_column:
    kind = st.segmented_control(t("alerts.kind_filter"), ["all", *alert_log.KINDS], default="all",
                                key="alerts_kind", help=t("alerts.kind_help"),
                                format_func=lambda k: t(f"alerts.kind.{k}")) or "all"
offset, limit = page_window("alerts_list")
with db() as session:
    rows, total = alert_log.list_alerts(session=session, actor=actor, status=status,
                                        kind=None if kind == "all" else kind, offset=offset, limit=limit)
    without_channel = alert_log.open_without_channel(session=session, actor=actor)
if without_channel:
    st.warning(t("alerts.no_channel_warning", count=without_channel))


def notified_text(row) -> str:
    """What the groups were actually told, from the outbox."""
    alert = row.alert
    if not alert.notified:
        return t("alerts.notified.superseded")
    if row.without_channel:
        return t("alerts.notified.no_channel")
    parts = []
    if row.sent:
        parts.append(t("alerts.notified.sent", count=row.sent))
    if row.pending:
        parts.append(t("alerts.notified.pending", count=row.pending))
    if row.failed:
        parts.append(t("alerts.notified.failed", count=row.failed))
    if alert.last_notified_at is not None:
        parts.append(t("alerts.notified.last", at=format_display(alert.last_notified_at)))
    return "，".join(parts)


# Levels that are events, not a percentage crossed.
WITHOUT_PCT = {AlertLevel.member_left, AlertLevel.code_stale, AlertLevel.links_quota_low}


# Widths (px) that keep every column of the list in view at 1440 px; a long cell
# is cut short and shown whole when the operator widens or hovers it.
ALERT_COLUMNS = {t(f"alerts.col.{name}"): st.column_config.Column(width=width) for name, width in (
    ("id", 40), ("opened", 118), ("level", 115), ("account", 180), ("name", 85), ("branch", 95), ("usage", 80),
    ("state", 62), ("notified", 125), ("acknowledged", 72))}


def store_text(row) -> str:
    return f"{row.store_name}（{row.crm_store_id}）" if row.crm_store_id else ""


def usage_text(row) -> str:
    """The count then (an incident has none)."""
    if row.alert.customer_count is None or row.alert.capacity_limit is None:
        return ""
    return f"{row.alert.customer_count:,}/{row.alert.capacity_limit:,}"


def branch_text(row) -> str:
    if row.branch_name:
        return row.branch_name
    return t("alerts.chain") if row.alert.account_id is None and row.alert.store_id is None else ""


if rows:
    st.dataframe(pd.DataFrame([{
        t("alerts.col.id"): r.alert.id,
        t("alerts.col.opened"): format_display(r.alert.opened_at),
        t("alerts.col.level"): t(f"capacity.level.{r.alert.level}") if r.alert.level in WITHOUT_PCT
        else f"{t(f'capacity.level.{r.alert.level}')} {r.alert.level_pct}%",
        # An incident names its store where a capacity alert names its account.
        t("alerts.col.account"): r.userid or store_text(r), t("alerts.col.name"): r.account_name or "",
        t("alerts.col.branch"): branch_text(r),
        t("alerts.col.usage"): usage_text(r),
        t("alerts.col.state"): t("alerts.state.open") if r.alert.closed_at is None else
        t("alerts.state.closed", at=format_display(r.alert.closed_at)),
        t("alerts.col.notified"): notified_text(r),
        t("alerts.col.acknowledged"): t("alerts.ack.none") if r.alert.acknowledged_at is None else
        t("alerts.ack.by", at=format_display(r.alert.acknowledged_at)),
    } for r in rows]), hide_index=True, width="stretch", column_config=ALERT_COLUMNS)
    # An incident's account of what happened is a sentence: below the table, in full.
    incidents = [r for r in rows if r.alert.detail]
    if incidents:
        st.markdown(f"**{t('alerts.col.detail')}**")
        st.markdown("\n".join(md("alerts.detail_line", id=r.alert.id, level=t(f"capacity.level.{r.alert.level}"),
                                   subject=store_text(r) or branch_text(r), detail=r.detail) for r in incidents))
else:
    st.caption(t("common.no_rows"))
pager(total, "alerts_list")

unacknowledged = {r.alert.id: r for r in rows if r.alert.acknowledged_at is None and r.alert.notified}
with st.form("alerts_ack"):
    chosen = st.multiselect(t("alerts.ack_select"), list(unacknowledged), key="alerts_ack_ids",
                            placeholder=t("alerts.choose"), select_all=False,
                            format_func=lambda a: f"#{a} {unacknowledged[a].userid or store_text(unacknowledged[a])} "
                                                  f"{t(f'capacity.level.{unacknowledged[a].alert.level}')}")
    if st.form_submit_button(t("alerts.ack_button")):
        with showing_errors():
            with db() as session:
                done = alert_log.acknowledge(session=session, actor=actor, alert_versions={
                    alert_id: unacknowledged[alert_id].alert.version for alert_id in chosen})
            st.success(t("alerts.acked", count=done))

st.subheader(t("alerts.deliveries"))
delivery_status = st.segmented_control(
    t("alerts.delivery_filter"), ["pending", "sent", "failed"], key="alerts_delivery_status",
    help=t("alerts.delivery_help"),
    format_func=lambda s: t(f"alerts.delivery.{s}"))
d_offset, d_limit = page_window("alerts_deliveries")
with db() as session:
    deliveries, d_total = alert_log.list_deliveries(session=session, actor=actor, status=delivery_status,
                                                    offset=d_offset, limit=d_limit)
if deliveries:
    st.dataframe(pd.DataFrame([{
        t("alerts.dcol.id"): d.delivery.id, t("alerts.dcol.channel"): d.channel_name,
        t("alerts.dcol.created"): format_display(d.delivery.created_at),
        t("alerts.dcol.status"): t(f"alerts.delivery.{d.delivery.status}"),
        t("alerts.dcol.attempts"): d.delivery.attempts,
        t("alerts.dcol.uncertain"): d.delivery.uncertain_sends or "",
        t("alerts.dcol.next"): format_display(d.delivery.next_attempt_at) if d.delivery.status == "pending" else "",
        t("alerts.dcol.sent"): format_display(d.delivery.sent_at),
        t("alerts.dcol.digest"): t("alerts.dcol.digest_of", count=d.delivery.digest_size - 1)
        if d.delivery.digest_size else "",
        t("alerts.dcol.error"): error_text(Problem.decode(d.delivery.last_error)) if d.delivery.last_error else "",
        t("alerts.dcol.text"): d.delivery.text,
    } for d in deliveries]), hide_index=True, width="stretch")
else:
    st.caption(t("common.no_rows"))
pager(d_total, "alerts_deliveries")

failed = [d.delivery.id for d in deliveries if d.delivery.status == "failed"]
if failed:
    with st.form("alerts_retry"):
        retry = st.multiselect(t("alerts.retry_select"), failed, key="alerts_retry_ids", placeholder=t("alerts.choose"),
                               select_all=False)
        if st.form_submit_button(t("alerts.retry_button")):
            with showing_errors():
                with db() as session:
                    count = alert_log.retry_deliveries(session=session, actor=actor, delivery_ids=retry)
                st.success(t("alerts.retried", count=count))

settings = get_settings()
if settings.uses_wecom_simulator:
    st.subheader(t("alerts.inbox"))
    st.caption(t("alerts.inbox_help"))
    try:
        inbox = fetch_inbox(settings.WECOM_API_BASE)
    except (httpx.HTTPError, ValueError) as exc:
        st.warning(t("alerts.inbox_unreachable", reason=type(exc).__name__))
    else:
        with db() as session:
            names = channel_service.channel_names_by_robot(session=session, actor=actor)
        by_robot: dict[tuple[str, str], list[dict]] = {}
        for message in inbox:
            robot_of = (message["kind"], message["robot"])
            # A branch-scoped user sees its own channels' robots only: HQ's robot hears every branch.
            if actor.branch_scope is None or robot_of in names:
                by_robot.setdefault(robot_of, []).append(message)
        if not by_robot:
            st.caption(t("alerts.inbox_empty"))
        # One section per robot group: a branch's alert reaches its branch group and the HQ group.
        for (kind, robot), messages in sorted(by_robot.items(), key=lambda item: names.get(item[0], item[0][1])):
            st.markdown(md("alerts.inbox.robot", name=names.get((kind, robot), robot),
                          kind=t("channel_kind." + kind), count=len(messages)))
            st.dataframe(pd.DataFrame([{
                t("alerts.inbox.col.time"): datetime.fromtimestamp(m["received_at"], UTC).astimezone(
                    display_zone()).strftime("%Y-%m-%d %H:%M:%S"),
                t("alerts.inbox.col.text"): m["text"],
            } for m in messages]), hide_index=True, width="stretch")

    st.subheader(t("alerts.app_inbox"))
    st.caption(t("alerts.app_inbox_help"))
    try:
        app_inbox = fetch_app_inbox(settings.WECOM_API_BASE)
    except (httpx.HTTPError, ValueError) as exc:
        st.warning(t("alerts.inbox_unreachable", reason=type(exc).__name__))
    else:
        with db() as session:
            in_view = channel_service.app_members_in_view(session=session, actor=actor)
        by_member: dict[str, list[dict]] = {}
        for message in app_inbox:
            if in_view is None or message["userid"].lower() in in_view:
                by_member.setdefault(message["userid"], []).append(message)
        if not by_member:
            st.caption(t("alerts.inbox_empty"))
        for userid, messages in sorted(by_member.items()):
            st.markdown(md("alerts.app_inbox.member", userid=userid, count=len(messages)))
            st.dataframe(pd.DataFrame([{
                t("alerts.inbox.col.time"): datetime.fromtimestamp(m["at"], UTC).astimezone(
                    display_zone()).strftime("%Y-%m-%d %H:%M:%S"),
                t("alerts.app_inbox.col.title"): m["title"],
                t("alerts.inbox.col.text"): m["description"],
                t("alerts.app_inbox.col.link"): f"{m['btntxt']}: {m['url']}",
            } for m in messages]), hide_index=True, width="stretch")

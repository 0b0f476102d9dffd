from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from base.timeutil import format_display, to_storage
from console.ui.context import db, page_actor
from console.ui.records import change_text
from console.ui.widgets import download_buttons, page_window, pager, table
from core import audit as audit_service
from core.auth.permissions import Capability
from i18n import label, t

actor = page_actor(Capability.view_audit)
st.title(t("audit.title"))


def action_label(code: str | None) -> str:
    return label(f"audit.action.{code}", t("audit.field.other", field=code)) if code else t("common.all")


def entity_label(code: str | None) -> str:
    return label(f"audit.entity.{code}", t("audit.field.other", field=code)) if code else t("common.all")


def audit_frame(entries: list) -> pd.DataFrame:
    return pd.DataFrame([{
        t("audit.at"): format_display(e.at, "%Y-%m-%d %H:%M:%S"), t("audit.actor"): e.actor_name,
        t("audit.action"): action_label(e.action), t("audit.entity_type"): entity_label(e.entity_type),
        t("audit.entity_id"): e.entity_id, t("audit.change"): change_text(e.entity_type, e.before_json, e.after_json),
    } for e in entries], columns=[t(k) for k in ("audit.at", "audit.actor", "audit.action", "audit.entity_type",
                                                 "audit.entity_id", "audit.change")])


with db() as session:
    actions, entity_types = audit_service.filter_choices(session=session, actor=actor)
cols = st.columns(5)
actor_name = cols[0].text_input(t("audit.actor"), key="audit_actor")
action = cols[1].selectbox(t("audit.action"), [None, *actions], format_func=action_label, key="audit_action")
entity_type = cols[2].selectbox(t("audit.entity_type"), [None, *entity_types], format_func=entity_label,
                                key="audit_entity_type")
since = cols[3].date_input(t("audit.since"), value=None, key="audit_since")
until = cols[4].date_input(t("audit.until"), value=None, key="audit_until")
entity_id = st.text_input(t("audit.entity_id"), key="audit_entity_id")
filters = audit_service.AuditFilter(
    actor_name=actor_name or None, action=action, entity_type=entity_type, entity_id=entity_id or None,
    since=to_storage(datetime.combine(since, time.min)) if since else None,
    until=to_storage(datetime.combine(until + timedelta(days=1), time.min)) if until else None,
)
offset, limit = page_window("audit")
with db() as session:
    entries, total = audit_service.search(session=session, actor=actor, filters=filters, offset=offset, limit=limit)
frame = audit_frame(entries)
table(frame, column_config={t("audit.change"): st.column_config.TextColumn(width="large")})
pager(total, "audit")
# The export is the whole filtered result, built only when asked for.
if total and st.toggle(t("audit.export_all"), key="audit_export"):
    with db() as session:
        everything, _ = audit_service.search(session=session, actor=actor, filters=filters,
                                             limit=audit_service.EXPORT_LIMIT)
    if total > audit_service.EXPORT_LIMIT:
        st.warning(t("audit.export_capped", total=total, limit=audit_service.EXPORT_LIMIT))
    download_buttons(audit_frame(everything), t("audit.title"), [(label_text, value) for label_text, value in [
        (t("audit.actor"), actor_name), (t("audit.action"), action_label(action)),
        (t("audit.entity_type"), entity_label(entity_type)), (t("audit.entity_id"), entity_id),
        (t("audit.since"), since.isoformat() if since else ""), (t("audit.until"), until.isoformat() if until else "")]
        if value], "audit_dl")

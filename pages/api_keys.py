import pandas as pd
import streamlit as st

from base.timeutil import format_display
from console.ui.actions import showing_errors
from console.ui.context import db, page_actor
from console.ui.widgets import table
from core.auth import api_keys as api_key_service
from core.auth.permissions import Capability
from i18n import t

actor = page_actor(Capability.manage_users)
st.title(t("api_keys.title"))

with st.form("api_key_create", clear_on_submit=True):
    name = st.text_input(t("api_keys.name"))
    if st.form_submit_button(t("api_keys.create"), type="primary"):
        with showing_errors():
            with db() as session:
                _, plain = api_key_service.create_api_key(session=session, actor=actor, name=name)
            st.success(t("api_keys.created"))
            st.code(plain, language=None)

with db() as session:
    keys = api_key_service.list_api_keys(session=session, actor=actor)
table(pd.DataFrame([{
    t("api_keys.col.id"): k.id, t("api_keys.name"): k.name, t("api_keys.col.prefix"): k.prefix + "…",
    t("api_keys.col.created"): format_display(k.created_at),
    t("api_keys.col.last_used"): format_display(k.last_used_at),
    t("api_keys.col.status"): t("api_keys.revoked") if k.revoked_at else t("api_keys.active"),
} for k in keys]))

live = {k.id: f"{k.name} ({k.prefix}…)" for k in keys if k.revoked_at is None}
if live:
    picked = st.selectbox(t("api_keys.revoke"), list(live), format_func=live.get, index=None, key="api_key_pick",
                          placeholder=t("api_keys.pick_placeholder"))
    if picked is not None:
        st.warning(t("api_keys.confirm_revoke"))
        if st.button(t("api_keys.revoke"), type="primary", key="api_key_revoke"):
            with showing_errors():
                with db() as session:
                    api_key_service.revoke_api_key(session=session, actor=actor, key_id=picked)
                st.rerun()

from datetime import date, datetime, time

import pandas as pd
import streamlit as st

from base.timeutil import format_display, to_display, to_storage, utcnow
from console.ui.actions import showing_errors
from console.ui.context import db, page_actor
from console.ui.text import md
from core import settings_store
from core.auth import lockout
from core.auth import users as user_service
from core.auth.permissions import Capability
from core.auth.sessions import PASSWORD_LOGIN_SETTING, password_login_enabled
from core.directory import stores as store_service
from db.models import Role
from i18n import t

actor = page_actor(Capability.manage_users)
st.title(t("users.title"))

with db() as session:
    branches = store_service.visible_branches(session=session, actor=actor)
branch_options = {None: t("users.no_branch"), **{b.code: f"{b.code} {b.name}" for b in branches}}
role_options = [r.value for r in Role]


def expiry_to_storage(day: date | None) -> datetime | None:
    # An expiry date means "valid through that day" in the display time zone.
    return to_storage(datetime.combine(day, time(23, 59, 59))) if day else None


search = st.text_input(t("common.search"), key="users_search")
with db() as session:
    listed = user_service.list_users(session=session, actor=actor, search=search)
    locked = lockout.held_usernames(session=session, actor=actor, now=utcnow())
st.dataframe(pd.DataFrame([{
    t("users.username"): u.username, t("users.display_name"): u.display_name, t("users.role"): t(f"role.{u.role}"),
    t("users.branch"): code or "", t("users.expires_at"): format_display(u.expires_at, "%Y-%m-%d"),
    t("users.wecom_userid"): u.wecom_userid or "",
    t("users.disabled"): t("common.yes") if u.disabled else t("common.no"),
    t("users.col.last_change"): format_display(u.updated_at),
    t("users.col.locked"): t("users.locked") if u.username.lower() in locked else "",
} for u, code in listed]), hide_index=True, width="stretch")

# A saved change reruns the page so that the list above shows it; its message outlives that rerun.
FLASH_KEY = "users_flash"
flash = st.session_state.pop(FLASH_KEY, None)
if flash:
    st.success(flash)

create_tab, edit_tab = st.tabs([t("users.create"), t("users.edit")])
# Not cleared on submit: a refused form keeps what was typed; a created user starts a new, empty form.
create_form = st.session_state.setdefault("users_create_form", 0)
with create_tab, st.form(f"user_create_{create_form}"):
    cols = st.columns(2)
    username = cols[0].text_input(t("users.username"))
    display_name = cols[1].text_input(t("users.display_name"))
    role = cols[0].selectbox(t("users.role"), role_options, format_func=lambda r: t(f"role.{r}"))
    branch_code = cols[1].selectbox(t("users.branch"), list(branch_options), format_func=branch_options.get)
    expires = cols[0].date_input(t("users.expires_at"), value=None)
    password = cols[1].text_input(t("users.password"), type="password")
    wecom_userid = st.text_input(t("users.wecom_userid"), help=t("users.wecom_userid_help"),
                                 key=f"users_create_wecom_userid_{create_form}")
    if st.form_submit_button(t("users.create"), type="primary"):
        with showing_errors():
            with db() as session:
                user_service.create_user(session=session, actor=actor, data=user_service.UserCreate(
                    username=username, role=role, password=password, display_name=display_name,
                    branch_code=branch_code, expires_at=expiry_to_storage(expires), wecom_userid=wecom_userid))
            st.session_state[FLASH_KEY] = md("users.created", username=username.strip())
            st.session_state["users_create_form"] = create_form + 1
            st.rerun()

with edit_tab:
    by_name = {u.username: u for u, _ in listed}
    picked = st.selectbox(t("users.pick"), list(by_name), index=None, key="users_pick",
                          placeholder=t("users.pick_placeholder"))
    if picked:
        user = by_name[picked]
        current_branch = next((code for u, code in listed if u.id == user.id), None)
        with st.form(f"user_edit_{user.id}_{user.version}"):
            cols = st.columns(2)
            display_name = cols[0].text_input(t("users.display_name"), value=user.display_name)
            role = cols[1].selectbox(t("users.role"), role_options, index=role_options.index(user.role),
                                     format_func=lambda r: t(f"role.{r}"))
            branch_keys = list(branch_options)
            branch_code = cols[0].selectbox(
                t("users.branch"), branch_keys, format_func=branch_options.get,
                index=branch_keys.index(current_branch) if current_branch in branch_keys else 0)
            shown_expiry = to_display(user.expires_at)
            expires = cols[1].date_input(t("users.expires_at"), value=shown_expiry.date() if shown_expiry else None)
            wecom_userid = st.text_input(t("users.wecom_userid"), value=user.wecom_userid or "",
                                         help=t("users.wecom_userid_help"), key=f"users_edit_wecom_{user.id}")
            disabled = st.checkbox(t("users.disabled"), value=user.disabled)
            if st.form_submit_button(t("common.save"), type="primary"):
                with showing_errors():
                    with db() as session:
                        user_service.update_user(session=session, actor=actor, user_id=user.id,
                                                 expected_version=user.version, data=user_service.UserUpdate(
                                                     role=role, display_name=display_name, branch_code=branch_code,
                                                     expires_at=expiry_to_storage(expires), disabled=disabled,
                                                     wecom_userid=wecom_userid))
                    st.session_state[FLASH_KEY] = md("users.updated", username=user.username)
                    st.rerun()
        with st.form(f"user_password_{user.id}_{user.version}", clear_on_submit=True):
            new_password = st.text_input(t("users.new_password"), type="password")
            if st.form_submit_button(t("users.reset_password")):
                with showing_errors():
                    with db() as session:
                        user_service.reset_password(session=session, actor=actor, user_id=user.id,
                                                    expected_version=user.version, password=new_password)
                    st.success(md("users.password_reset_done", username=user.username))
        if st.button(t("users.unlock"), help=t("users.unlock_help"), key=f"users_unlock_{user.id}"):
            with showing_errors():
                with db() as session:
                    cleared = user_service.unlock_user(session=session, actor=actor, username=user.username)
                st.success(md("users.unlocked", username=user.username, count=cleared))

st.subheader(t("users.password_login"))
with db() as session:
    password_login = password_login_enabled(session=session)
with st.form("users_password_login_form"):
    allowed = st.toggle(t("users.password_login_on"), value=password_login, help=t("users.password_login_help"),
                        key="users_password_login")
    if st.form_submit_button(t("common.save"), key="users_password_login_save"):
        with showing_errors():
            with db() as session:
                settings_store.save(session=session, actor=actor, key=PASSWORD_LOGIN_SETTING, value=allowed)
            st.success(t("users.password_login_saved"))

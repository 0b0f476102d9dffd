import pandas as pd
import streamlit as st

from console.messages import t
from console.ui.context import db, page_actor, show_error
from console.ui.widgets import download_buttons, page_window, pager
from core import accounts as account_service
from core import settings_store
from core.errors import DomainError
from core.permissions import Capability
from core.timeutil import format_display
from db.models import AccountStatus

actor = page_actor(Capability.view_directory)
can_edit = actor.can(Capability.manage_accounts)
st.title(t("accounts_page.title"))
TABLE_KEY = "accounts_table"

flash = st.session_state.pop("accounts_flash", None)
if flash:
    st.success(flash)


def account_frame(rows: list[account_service.AccountRow]) -> pd.DataFrame:
    columns = ["userid", "name", "status", "customer_count", "capacity_limit", "usage", "store", "synced",
               "sync_error"]
    return pd.DataFrame([{
        "userid": r.userid, "name": r.name, "status": t(f"account_status.{r.status}"),
        "customer_count": r.customer_count, "capacity_limit": r.capacity_limit, "usage": round(r.usage * 100, 1),
        "store": f"{r.crm_store_id} {r.store_name}" if r.crm_store_id else "",
        "synced": format_display(r.count_synced_at), "sync_error": r.sync_error or "",
    } for r in rows], columns=columns).rename(columns={c: t(f"accounts_page.col.{c}") for c in columns})


cols = st.columns([2, 1, 1, 1])
search = cols[0].text_input(t("accounts_page.search"), key="accounts_search")
status_options = {None: t("common.all"), **{s.value: t(f"account_status.{s.value}") for s in AccountStatus}}
status = cols[1].selectbox(t("accounts_page.filter.status"), list(status_options), format_func=status_options.get,
                           key="accounts_status")
bound_options = {None: t("common.all"), True: t("accounts_page.bound.yes"), False: t("accounts_page.bound.no")}
bound = cols[2].selectbox(t("accounts_page.filter.bound"), list(bound_options), format_func=bound_options.get,
                          key="accounts_bound")
with db() as session:
    levels = settings_store.effective_all(session=session)
usage_options = {None: t("common.all"), levels["capacity.warn_pct"]: f"≥ {levels['capacity.warn_pct']}%",
                 levels["capacity.critical_pct"]: f"≥ {levels['capacity.critical_pct']}%",
                 100: t("accounts_page.full")}
usage = cols[3].selectbox(t("accounts_page.filter.usage"), list(usage_options), format_func=usage_options.get,
                          key="accounts_usage")
filters = account_service.AccountFilter(status=status, bound=bound, usage_at_least_pct=usage, search=search)

offset, limit = page_window("accounts")
with db() as session:
    rows, total = account_service.search_accounts(session=session, actor=actor, filters=filters, offset=offset,
                                                  limit=limit)
if not rows:
    st.caption(t("common.no_rows"))
event = st.dataframe(account_frame(rows), hide_index=True, width="stretch", key=TABLE_KEY,
                     on_select="rerun" if can_edit else "ignore", selection_mode="single-row")
pager(total, "accounts")

picked = [rows[i] for i in event.selection.rows if i < len(rows)] if can_edit else []
if can_edit:
    if not picked:
        st.caption(t("accounts_page.pick_to_edit"))
    else:
        row = picked[0]
        st.subheader(t("accounts_page.edit_title", userid=row.userid, name=row.name))
        with st.form(f"accounts_edit_{row.account_id}_{row.version}"):
            new_limit = st.number_input(t("accounts_page.col.capacity_limit"), min_value=1,
                                        max_value=account_service.MAX_CAPACITY_LIMIT, value=row.capacity_limit,
                                        step=100, key="accounts_edit_limit")
            statuses = [s.value for s in AccountStatus]
            new_status = st.selectbox(t("accounts_page.col.status"), statuses, index=statuses.index(row.status),
                                      format_func=lambda s: t(f"account_status.{s}"), key="accounts_edit_status")
            if new_status == AccountStatus.disabled and row.crm_store_id:
                st.caption(t("accounts_page.disable_note", store=row.crm_store_id))
            if st.form_submit_button(t("common.save"), type="primary"):
                try:
                    with db() as session:
                        account_service.update_account(session=session, actor=actor, account_id=row.account_id,
                                                       expected_version=row.version, capacity_limit=int(new_limit),
                                                       status=new_status)
                except DomainError as exc:
                    show_error(exc)
                else:
                    st.session_state.pop(TABLE_KEY, None)
                    st.session_state["accounts_flash"] = t("accounts_page.saved", userid=row.userid)
                    st.rerun()

if total and st.toggle(t("accounts_page.export"), key="accounts_export"):
    with db() as session:
        all_rows, _ = account_service.search_accounts(session=session, actor=actor, filters=filters, limit=total)
    download_buttons(account_frame(all_rows), "accounts", "accounts_dl")

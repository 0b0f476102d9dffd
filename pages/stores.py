import pandas as pd
import streamlit as st

from base.timeutil import format_display
from console.ui.actions import showing_errors
from console.ui.context import db, page_actor
from console.ui.widgets import download_buttons, page_window, pager, table
from core.auth.permissions import Capability
from core.directory import stores as store_service
from core.import_runs import runs as import_runs
from i18n import t

actor = page_actor(Capability.view_directory)
st.title(t("stores.title"))


def store_frame(rows: list[store_service.StoreListRow]) -> pd.DataFrame:
    return pd.DataFrame([{
        t("stores.col.crm_store_id"): r.crm_store_id, t("stores.col.name"): r.name,
        t("stores.col.branch"): r.branch_name, t("stores.col.status"): t(f"store_status.{r.status}"),
        t("stores.col.wecom_userid"): r.wecom_userid or "", t("stores.col.wecom_name"): r.wecom_name or "",
        t("stores.col.entry"): (t("bindings.entry.visible") if r.entry_reason is None
                                else t(f"entry_reason.{r.entry_reason}")),
    } for r in rows], columns=[t(k) for k in ("stores.col.crm_store_id", "stores.col.name", "stores.col.branch",
                                              "stores.col.status", "stores.col.wecom_userid",
                                              "stores.col.wecom_name", "stores.col.entry")])


stores_tab, branches_tab = st.tabs([t("stores.tab.stores"), t("stores.tab.branches")])
with db() as session:
    branches = store_service.visible_branches(session=session, actor=actor)

with stores_tab:
    cols = st.columns([3, 2, 1, 1])
    search = cols[0].text_input(t("stores.search"), key="stores_search")
    branch_options = {None: t("common.all"), **{b.id: f"{b.code} {b.name}" for b in branches}}
    branch_id = cols[1].selectbox(t("stores.filter.branch"), list(branch_options), format_func=branch_options.get,
                                  key="stores_branch")
    status_options = {None: t("common.all"), "open": t("store_status.open"), "closed": t("store_status.closed")}
    status = cols[2].selectbox(t("stores.filter.status"), list(status_options), format_func=status_options.get,
                               key="stores_status")
    bound_options = {None: t("common.all"), True: t("stores.bound.yes"), False: t("stores.bound.no")}
    bound = cols[3].selectbox(t("stores.filter.bound"), list(bound_options), format_func=bound_options.get,
                              key="stores_bound")
    filters = store_service.StoreFilter(branch_id=branch_id, status=status, bound=bound, search=search)
    offset, limit = page_window("stores")
    with db() as session:
        rows, total = store_service.search_stores(session=session, actor=actor, filters=filters, offset=offset,
                                                  limit=limit)
    table(store_frame(rows))
    pager(total, "stores")
    if st.toggle(t("common.download_xlsx") + " / CSV", key="stores_export"):
        with db() as session:
            all_rows, _ = store_service.search_stores(session=session, actor=actor, filters=filters, limit=total)
        download_buttons(store_frame(all_rows), t("stores.title"), [
            (t("stores.filter.branch"), branch_options[branch_id]), (t("stores.filter.status"), status_options[status]),
            (t("stores.filter.bound"), bound_options[bound]),
            *([(t("common.export.search"), search.strip())] if search.strip() else [])], "stores_dl")

with branches_tab:
    with db() as session:
        summaries = store_service.branch_summaries(session=session, actor=actor)
    frame = pd.DataFrame([{
        t("stores.col.branch_code"): s.code, t("stores.col.branch_name"): s.name, t("stores.col.stores"): s.stores,
        t("stores.col.open_stores"): s.open_stores, t("stores.col.bound_open_stores"): s.bound_open_stores,
        t("stores.col.binding_rate"): None if s.binding_rate is None else round(s.binding_rate * 100, 1),
    } for s in summaries])
    table(frame)
    download_buttons(frame, f"{t('stores.title')}-{t('stores.tab.branches')}", [], "branches_dl")

if actor.can(Capability.manage_stores):
    with st.expander(t("stores.import")):
        st.caption(t("stores.import_help"))
        with db() as session:
            last = import_runs.latest_run(session=session, actor=actor, kind="stores")
        if last is not None and last.active:
            st.warning(t("stores.import_running", user=last.actor_name, since=format_display(last.started_at),
                         file=last.filename, done=last.steps_done, total=last.steps_total))
        elif last is not None:
            st.caption(t("stores.import_last" if last.state == "done" else "stores.import_last_refused",
                         file=last.filename, user=last.actor_name, at=format_display(last.finished_at)))
        # Any file is taken: core names a wrong type in Chinese, Streamlit's own check would not.
        upload = st.file_uploader(t("stores.import"), key="stores_upload")
        if upload is not None and st.button(t("stores.import"), type="primary", key="stores_import"):
            with showing_errors():
                with db() as session:
                    result = store_service.import_stores(session=session, actor=actor, data=upload.getvalue(),
                                                         filename=upload.name)
                if result.ok:
                    st.success(t("stores.import_done", created=result.created, updated=result.updated,
                                 unchanged=result.unchanged, branches_created=result.branches_created))
                else:
                    st.error(t("stores.import_failed", count=len(result.errors)))
                    st.dataframe(pd.DataFrame([{t("stores.import_col.row"): row,
                                                t("stores.import_col.reason"): t(key, **params)}
                                               for row, key, params in result.errors]), hide_index=True)

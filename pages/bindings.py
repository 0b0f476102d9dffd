import pandas as pd
import streamlit as st

from base.timeutil import format_display
from console.ui.actions import showing_errors
from console.ui.context import db, page_actor
from console.ui.ticked_rows import TickedTable
from console.ui.widgets import download_buttons, page_window, pager
from core.auth.permissions import Capability
from core.bindings import review
from core.bindings.entries import ACCOUNT_STANDBY, EntryReason
from core.directory import stores as store_service
from db.models import AccountStatus
from i18n import error_text, t

actor = page_actor(Capability.view_directory)
can_act = actor.can(Capability.review_entries)
st.title(t("bindings.title"))
PENDING_KEY = "review_pending"
# The confirmation names this many of the stores that change.
STORES_LISTED = 20

flash = st.session_state.pop("review_flash", None)
if flash:
    st.success(flash)
if not can_act:
    st.info(t("bindings.read_only"))


def entry_text(reason: str | None) -> str:
    return t("bindings.entry.visible") if reason is None else t(f"entry_reason.{reason}")


def store_names(items: list) -> str:
    """CRM store IDs with names, the first STORES_LISTED of them."""
    listed = "、".join(f"{s.crm_store_id} {s.store_name}" for s in items[:STORES_LISTED])
    return listed + ("…" if len(items) > STORES_LISTED else "")


def binding_frame(rows: list[review.BindingRow]) -> pd.DataFrame:
    columns = ["crm_store_id", "store_name", "branch", "store_status", "wecom_userid", "wecom_name",
               "account_status", "customer_count", "capacity_limit", "usage", "flag", "review", "entry", "started"]
    return pd.DataFrame([{
        "crm_store_id": r.crm_store_id, "store_name": r.store_name, "branch": r.branch_name,
        "store_status": t(f"store_status.{r.store_status}"), "wecom_userid": r.wecom_userid,
        "wecom_name": r.wecom_name, "account_status": t(f"account_status.{r.account_status}"),
        "customer_count": r.customer_count, "capacity_limit": r.capacity_limit, "usage": round(r.usage * 100, 1),
        "flag": t("stores.entry.shown" if r.shown else "stores.entry.hidden"),
        "review": t("bindings.state.pending") if r.reviewed_at is None else
        t("bindings.state.reviewed_by", who=r.reviewed_by or "", at=format_display(r.reviewed_at)),
        "entry": entry_text(r.entry_reason), "started": format_display(r.started_at),
    } for r in rows], columns=columns).rename(columns={c: t(f"bindings.col.{c}") for c in columns})


def choose(label: str, options: dict, key: str, container):
    return container.selectbox(label, list(options), format_func=options.get, key=key)


def close_pending() -> None:
    st.session_state.pop(PENDING_KEY, None)


@st.dialog(t("bindings.confirm_title"), on_dismiss=close_pending)
def confirm_bulk(pending: dict) -> None:
    """The bulk confirmation: how many stores change and which, then all or nothing
    against the versions the operator saw."""
    shown = pending["shown"]
    st.write(t("bindings.confirm_show" if shown else "bindings.confirm_hide",
               selected=len(pending["versions"]), changing=pending["changing"]))
    if pending["stores"]:
        st.write(t("bindings.confirm_stores", stores=pending["stores"]))
    left, right = st.columns(2)
    if right.button(t("common.cancel"), key="review_cancel"):
        close_pending()
        st.rerun()
    if left.button(t("common.confirm"), type="primary", key="review_confirm"):
        with showing_errors():
            try:
                with db() as session:
                    result = review.set_shown(session=session, actor=actor, versions=pending["versions"],
                                              shown=shown)
            except review.BulkRefused as exc:
                st.error(error_text(exc))
                st.dataframe(pd.DataFrame([{
                    t("bindings.col.crm_store_id"): p.crm_store_id, t("bindings.col.store_name"): p.store_name,
                    t("bindings.col.problem"): t(f"bindings.problem.{p.reason}"),
                } for p in exc.problems]), hide_index=True, width="stretch")
                return
            close_pending()
            table.clear()
            st.session_state["review_flash"] = t("bindings.done_show" if shown else "bindings.done_hide",
                                                 changed=result.changed, unchanged=result.unchanged)
            st.rerun()


with db() as session:
    branches = store_service.visible_branches(session=session, actor=actor)
row1 = st.columns([2, 1, 1, 1, 1, 1])
branch_id = choose(t("bindings.filter.branch"),
                   {None: t("common.all"), **{b.id: f"{b.code} {b.name}" for b in branches}}, "review_branch", row1[0])
review_state = choose(t("bindings.filter.review"), {None: t("common.all"), **{
    s.value: t(f"bindings.state.{s.value}") for s in review.ReviewState}}, "review_state", row1[1])
shown_flag = choose(t("bindings.filter.flag"), {None: t("common.all"), True: t("stores.entry.shown"),
                                              False: t("stores.entry.hidden")}, "review_flag", row1[2])
account_status = choose(t("bindings.filter.account_status"), {None: t("common.all"), **{
    s.value: t(f"account_status.{s.value}") for s in AccountStatus}}, "review_account_status", row1[3])
usage_band = choose(t("bindings.filter.usage"), {None: t("common.all"), **{
    b.value: t(f"bindings.usage.{b.value}") for b in review.UsageBand}}, "review_usage", row1[4])
entry_reasons = [r.value for r in EntryReason if r != EntryReason.no_binding] + [ACCOUNT_STANDBY]
entry_state = choose(t("bindings.filter.entry"), {None: t("common.all"), "visible": t("bindings.entry.visible"), **{
    r: t(f"entry_reason.{r}") for r in entry_reasons}}, "review_entry", row1[5])
search = st.text_input(t("bindings.search"), key="review_search")
filters = review.BindingFilter(branch_id=branch_id, review=review_state, shown=shown_flag,
                               account_status=account_status, usage_band=usage_band, entry=entry_state,
                               search=search)

offset, limit = page_window("review")
with showing_errors(stop=True), db() as session:
    rows, total = review.search_bindings(session=session, actor=actor, filters=filters, offset=offset, limit=limit)

# A ticked row is still itself only with the same binding at the same version.
table = TickedTable("review_table", (filters, offset, limit),
                    lambda seen, fresh: (seen.binding_id, seen.version) == (fresh.binding_id, fresh.version))
selected, changed = table.ticked(rows)
if changed:
    st.warning(t("bindings.selection_changed", count=len(changed), stores=store_names(changed)))
if not rows:
    st.caption(t("common.no_rows"))
table.render(binding_frame(rows), rows, hide_index=True, width="stretch",
             selection_mode="multi-row" if can_act else "single-row")
pager(total, "review")

if can_act:
    st.caption(t("bindings.selected", count=len(selected)))
    all_matching = st.checkbox(t("bindings.all_matching", total=total), key="review_all_matching")
    show_col, hide_col = st.columns(2)
    wanted = None
    if show_col.button(t("bindings.show_selected"), type="primary", key="review_bulk_show",
                       disabled=not selected and not all_matching):
        wanted = True
    if hide_col.button(t("bindings.hide_selected"), key="review_bulk_hide", disabled=not selected and not all_matching):
        wanted = False
    if wanted is not None and (selected or all_matching):
        if all_matching:
            with db() as session:
                targets = review.matching_rows(session=session, actor=actor, filters=filters)
        else:
            targets = [review.Selected(r.binding_id, r.version, r.shown, r.reviewed_at is not None, r.crm_store_id,
                                       r.store_name) for r in selected]
        changing = [s for s in targets if s.would_change(wanted)]
        st.session_state[PENDING_KEY] = {
            "shown": wanted, "versions": {s.binding_id: s.version for s in targets},
            "changing": len(changing), "stores": store_names(changing)}
    if st.session_state.get(PENDING_KEY):
        confirm_bulk(st.session_state[PENDING_KEY])

if len(selected) == 1:
    # Every widget below is keyed by the binding, so a click always acts on the
    # binding named in the heading, at the version shown in the table.
    row = selected[0]
    ref = row.binding_id
    st.subheader(t("bindings.row_title", store=row.crm_store_id, name=row.store_name))
    tabs = st.tabs([t("bindings.tab.history"),
                    *([t("bindings.tab.replace"), t("bindings.tab.unbind")] if can_act else [])])
    with tabs[0]:
        with db() as session:
            history = review.store_history(session=session, actor=actor, store_id=row.store_id)
        history_frame = pd.DataFrame([{
            t("bindings.col.wecom_userid"): h.wecom_userid, t("bindings.col.wecom_name"): h.wecom_name,
            t("bindings.col.started"): format_display(h.started_at),
            t("bindings.col.flag"): t("stores.entry.shown" if h.shown else "stores.entry.hidden"),
            t("bindings.col.review"): format_display(h.reviewed_at) + (f" {h.reviewed_by}" if h.reviewed_by else ""),
            t("bindings.col.ended"): format_display(h.ended_at),
            t("bindings.col.end_reason"): t(f"end_reason.{h.end_reason}") if h.end_reason else t("bindings.current"),
            t("bindings.col.ended_by"): h.ended_by or "",
        } for h in history])
        st.dataframe(history_frame, hide_index=True, width="stretch")
    if can_act:
        with tabs[1]:
            wanted_account = st.text_input(t("bindings.replace.search"), key=f"review_replace_search_{ref}")
            with db() as session:
                candidates, candidate_total = review.replacement_candidates(session=session, actor=actor,
                                                                            search=wanted_account)
            if candidate_total > len(candidates):
                st.caption(t("bindings.replace.candidates_cut", total=candidate_total, listed=len(candidates)))
            options = {"": t("bindings.replace.new_userid"), **{
                a.userid: t("bindings.replace.candidate", userid=a.userid, name=a.name,
                            status=t(f"account_status.{a.status}"), count=a.customer_count, limit=a.capacity_limit)
                for a in candidates}}
            with st.form(f"review_replace_{ref}", clear_on_submit=True):
                picked = st.selectbox(t("bindings.replace.pick"), list(options), format_func=options.get,
                                      key=f"review_replace_pick_{ref}")
                typed = st.text_input(t("bindings.replace.userid"), key=f"review_replace_userid_{ref}")
                name = st.text_input(t("bindings.replace.name"), key=f"review_replace_name_{ref}")
                show_now = st.checkbox(t("bindings.replace.show_now"), key=f"review_replace_show_now_{ref}")
                if st.form_submit_button(t("bindings.replace.submit"), type="primary"):
                    userid = picked or typed
                    if not userid.strip():
                        st.error(t("bindings.replace.userid_required"))
                    else:
                        with showing_errors():
                            with db() as session:
                                review.replace_account(session=session, actor=actor, binding_id=row.binding_id,
                                                       expected_version=row.version, userid=userid, name=name,
                                                       show_now=show_now)
                            table.clear()
                            st.session_state["review_flash"] = t("bindings.replace.done", store=row.crm_store_id,
                                                                 userid=userid.strip())
                            st.rerun()
        with tabs[2]:
            st.warning(t("bindings.unbind.warning", store=row.crm_store_id, userid=row.wecom_userid))
            sure = st.checkbox(t("bindings.unbind.confirm"), key=f"review_unbind_sure_{ref}")
            if st.button(t("bindings.unbind.submit"), disabled=not sure, key=f"review_unbind_{ref}"):
                with showing_errors():
                    with db() as session:
                        review.unbind(session=session, actor=actor, binding_id=row.binding_id,
                                      expected_version=row.version)
                    table.clear()
                    st.session_state["review_flash"] = t("bindings.unbind.done", store=row.crm_store_id)
                    st.rerun()

if total and st.toggle(t("bindings.export"), key="review_export"):
    with db() as session:
        all_rows, _ = review.search_bindings(session=session, actor=actor, filters=filters, limit=total)
    download_buttons(binding_frame(all_rows), "bindings", "review_dl")

import io

import pandas as pd
import streamlit as st

from base.errors import DomainError
from base.timeutil import format_display
from console.ui.actions import showing_errors
from console.ui.context import db, page_actor
from console.ui.freshness import count_age
from console.ui.text import md, md_error, plain
from console.ui.ticked_rows import TickedTable
from console.ui.widgets import download_buttons, page_window, pager
from core import settings_store
from core.auth.permissions import Capability
from core.bindings import review, standby, store_history
from core.bindings.entries import ACCOUNT_STANDBY, EntryReason
from core.capacity.freshness import count_freshness
from core.codes import posters
from core.codes.service import code_of_store
from core.directory import stores as store_service
from core.directory.known_members import CheckState
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
    st.info(t("bindings.read_only") if actor.branch_scope is not None else t("bindings.read_only_chain"))


def entry_text(reason: str | None) -> str:
    return t("bindings.entry.visible") if reason is None else t(f"entry_reason.{reason}")


def store_names(items: list) -> str:
    """CRM store IDs with names, the first STORES_LISTED of them."""
    listed = "、".join(f"{s.crm_store_id} {s.store_name}" for s in items[:STORES_LISTED])
    return listed + ("…" if len(items) > STORES_LISTED else "")


# What a reviewer decides on comes first, each at a width that keeps all of them on a
# 1440 px screen; the rest follows. A cut-off text shows in full when its cell is opened.
REVIEW_COLUMNS = {"crm_store_id": 90, "store_name": 140, "flag": 70, "review": 70, "entry": 130, "wecom_userid": 110,
                  "account_status": 70, "usage": 70, "started": 130}


def review_column_config() -> dict:
    config = {t(f"bindings.col.{c}"): st.column_config.Column(width=width, pinned=c in ("crm_store_id", "store_name"))
              for c, width in REVIEW_COLUMNS.items()}
    config[t("bindings.col.reviewed")] = st.column_config.Column(width=180)
    return config


def binding_frame(rows: list[review.BindingRow]) -> pd.DataFrame:
    columns = list(REVIEW_COLUMNS) + ["wecom_name", "standby", "customer_count", "capacity_limit", "count_age",
                                      "reviewed", "branch", "store_status"]
    with db() as session:
        lists = standby.standby_for_stores(session=session, actor=actor, store_ids=[r.store_id for r in rows])
        fresh = count_freshness(session=session, actor=actor, account_ids=[r.account_id for r in rows])
    return pd.DataFrame([{
        "crm_store_id": r.crm_store_id, "store_name": r.store_name, "branch": r.branch_name,
        "store_status": t(f"store_status.{r.store_status}"), "wecom_userid": r.wecom_userid,
        "wecom_name": r.wecom_name, "standby": "、".join(a.userid for a in lists.get(r.store_id, [])),
        "account_status": t(f"account_status.{r.account_status}"),
        "customer_count": r.customer_count, "capacity_limit": r.capacity_limit, "usage": round(r.usage * 100, 1),
        "count_age": count_age(fresh.get(r.account_id)),
        "flag": t("stores.entry.shown" if r.shown else "stores.entry.hidden"),
        "review": t("bindings.state.pending") if r.reviewed_at is None else t("bindings.state.reviewed"),
        "reviewed": "" if r.reviewed_at is None else f"{r.reviewed_by or ''} {format_display(r.reviewed_at)}".strip(),
        "entry": entry_text(r.entry_reason), "started": format_display(r.started_at),
    } for r in rows], columns=columns).rename(columns={c: t(f"bindings.col.{c}") for c in columns})


# The filters as chosen, in the page's words, for the export's name and 筛选条件 sheet.
shown_filters: list[tuple[str, str]] = []


def choose(label: str, options: dict, key: str, container):
    value = container.selectbox(label, list(options), format_func=options.get, key=key)
    shown_filters.append((label, options[value]))
    return value


def problem_frame(problems: list[review.RowProblem]) -> pd.DataFrame:
    return pd.DataFrame([{
        t("bindings.col.crm_store_id"): p.crm_store_id, t("bindings.col.store_name"): p.store_name,
        t("bindings.col.problem"): t(f"bindings.problem.{p.reason}"),
    } for p in problems])


def close_pending() -> None:
    st.session_state.pop(PENDING_KEY, None)


@st.dialog(t("bindings.confirm_title"), on_dismiss=close_pending)
def confirm_bulk(pending: dict) -> None:
    """The bulk confirmation: how many stores change and which, then all or nothing
    against the versions the operator saw."""
    shown = pending["shown"]
    check = pending["member_check"]
    if shown and check.state == CheckState.not_configured:
        st.caption(t("bindings.members_not_configured"))
    elif shown and check.state == CheckState.unreachable:
        st.warning(md("bindings.members_unreachable", reason=error_text(
            DomainError(check.reason_key or "wecom.reason.network", **check.reason_params))))
    refused = pending["refused"]
    if refused:
        st.warning(t("bindings.confirm_refused", count=len(refused)))
        st.dataframe(problem_frame(refused), hide_index=True, width="stretch")
    if not pending["changing"]:
        st.info(t("bindings.confirm_nothing", selected=pending["selected"]))
        if st.button(t("bindings.confirm_close"), key="review_cancel"):
            close_pending()
            st.rerun()
        return
    st.write(t("bindings.confirm_show" if shown else "bindings.confirm_hide",
               selected=pending["selected"], changing=pending["changing"]))
    if pending["stores"]:
        st.write(md("bindings.confirm_stores", stores=pending["stores"]))
    left, right = st.columns(2)
    if right.button(t("common.cancel"), key="review_cancel"):
        close_pending()
        st.rerun()
    label = t("bindings.confirm_rest", count=pending["changing"]) if refused else t("common.confirm")
    if left.button(label, type="primary", key="review_confirm"):
        with showing_errors():
            try:
                with db() as session:
                    result = review.set_shown(session=session, actor=actor, versions=pending["versions"],
                                              shown=shown)
            except review.BulkRefused as exc:
                st.error(md_error(exc))
                st.dataframe(problem_frame(exc.problems), hide_index=True, width="stretch")
                return
            close_pending()
            table.clear()
            st.session_state["review_flash"] = t("bindings.done_show" if shown else "bindings.done_hide",
                                                 changed=result.changed, unchanged=result.unchanged)
            st.rerun()


def standby_tab(row: review.BindingRow) -> None:
    """The store's standby accounts in order; HQ edits the whole list against the one shown."""
    st.caption(t("standby.help"))
    with db() as session:
        listed = standby.store_standby(session=session, actor=actor, store_id=row.store_id)
        warn = settings_store.effective(session=session, key="capacity.warn_pct")
        fresh = count_freshness(session=session, actor=actor, account_ids=[a.account_id for a in listed])
    if listed:
        st.dataframe(pd.DataFrame([{
            t("standby.col.position"): position, t("standby.col.userid"): a.userid, t("standby.col.name"): a.name,
            t("standby.col.status"): t(f"account_status.{a.status}"),
            t("standby.col.usage"): f"{a.customer_count:,}/{a.capacity_limit:,}（{a.usage_pct:.1f}%）",
            t("bindings.col.count_age"): count_age(fresh.get(a.account_id)),
            t("standby.col.ready"): t("standby.ready.yes" if a.usage_pct < warn else "standby.ready.no"),
        } for position, a in enumerate(listed, start=1)]), hide_index=True, width="stretch")
    else:
        st.caption(t("standby.none"))
    if not can_act:
        return
    # The list the operator last saw is what a save is checked against: a list
    # someone else changed meanwhile is not overwritten (the save is refused and
    # the form shows the new list on the next run).
    shown_ids = [a.account_id for a in listed]
    seen_key, text_key, save_key = (f"standby_seen_{row.store_id}", f"standby_text_{row.store_id}",
                                    f"standby_save_{row.store_id}")
    if not st.session_state.get(save_key) and st.session_state.get(seen_key) != shown_ids:
        st.session_state[seen_key] = shown_ids
        st.session_state[text_key] = "\n".join(a.userid for a in listed)
    with st.form(f"standby_form_{row.store_id}"):
        text = st.text_area(t("standby.edit"), key=text_key, help=t("standby.edit_help"))
        if st.form_submit_button(t("standby.save"), type="primary", key=save_key):
            expected = st.session_state[seen_key]
            st.session_state.pop(seen_key)
            with showing_errors():
                with db() as session:
                    saved = standby.set_standby(session=session, actor=actor, store_id=row.store_id,
                                                expected=expected, userids=standby.parse_userids(text))
                st.session_state["review_flash"] = (
                    md("standby.saved", store=row.crm_store_id, userids="、".join(a.userid for a in saved))
                    if saved else md("standby.saved_empty", store=row.crm_store_id))
                st.rerun()


def code_detail(row: review.BindingRow) -> None:
    """The store's contact code: the QR the App hands out once the entry is visible."""
    with db() as session:
        code = code_of_store(session=session, actor=actor, store_id=row.store_id)
    st.markdown(f"**{t('codes.detail.title')}**")
    if code is None or not code.config_id:
        st.caption(t("codes.detail.deleted") if code is not None and row.store_status != "open"
                   else t("codes.detail.none"))
    else:
        left, right = st.columns([1, 4])
        if code.qr_code:
            left.image(code.qr_code, width=160)
        right.markdown("  \n".join([
            f"{t('codes.detail.config_id')}：`{code.config_id}`", f"{t('codes.detail.state')}：`{code.state}`",
            f"{t('codes.detail.serving')}：{plain(code.userid) if code.userid else '—'}",
            *([md("codes.detail.pending", userid=code.pending_userid)] if code.pending_userid else []),
            *([f"{t('codes.detail.link')}：{plain(code.link_url)}"] if code.link_url else [])]))
    if code is not None and code.problem is not None:
        st.warning(md("codes.detail.problem", problem=error_text(code.problem)))
    if code is not None and code.link_problem is not None:
        st.warning(md("codes.detail.link_problem", problem=error_text(code.link_problem)))


def switch_history_tab(row: review.BindingRow) -> None:
    with db() as session:
        switches = standby.switch_history(session=session, actor=actor, store_id=row.store_id)
    if not switches:
        st.caption(t("standby.history_none"))
        return
    st.dataframe(pd.DataFrame([{
        t("standby.hcol.at"): format_display(s.switched_at), t("standby.hcol.reason"): t(f"standby.reason.{s.reason}"),
        t("standby.hcol.from"): f"{s.from_userid} {s.from_name}", t("standby.hcol.to"): f"{s.to_userid} {s.to_name}",
        t("standby.hcol.usage"): f"{s.customer_count:,}/{s.capacity_limit:,}（{s.usage_pct:.1f}%）",
        t("standby.hcol.actor"): s.actor or t("standby.sidecar"),
    } for s in switches]), hide_index=True, width="stretch")


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
if search.strip():
    shown_filters.append((t("common.export.search"), search.strip()))
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
    st.warning(md("bindings.selection_changed", count=len(changed), stores=store_names(changed)))
if not rows:
    st.caption(t("common.no_rows"))
table.render(binding_frame(rows), rows, hide_index=True, width="stretch", column_config=review_column_config(),
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
        # Every check runs now, so the confirmation says what will and will not change before it asks.
        with showing_errors(stop=True), db() as session:
            plan = review.plan_shown(session=session, actor=actor, targets=targets, shown=wanted)
        st.session_state[PENDING_KEY] = {
            "shown": wanted, "versions": plan.versions, "selected": plan.selected,
            "changing": len(plan.changing), "stores": store_names(plan.changing), "refused": plan.refused,
            "member_check": plan.member_check}
    if st.session_state.get(PENDING_KEY):
        confirm_bulk(st.session_state[PENDING_KEY])

if len(selected) == 1:
    # Every widget below is keyed by the binding, so a click always acts on the
    # binding named in the heading, at the version shown in the table.
    row = selected[0]
    ref = row.binding_id
    st.subheader(md("bindings.row_title", store=row.crm_store_id, name=row.store_name))
    with db() as session:
        row_fresh = count_freshness(session=session, actor=actor, account_ids=[row.account_id]).get(row.account_id)
    st.caption(md("bindings.row_count", userid=row.wecom_userid, count=f"{row.customer_count:,}",
                  limit=f"{row.capacity_limit:,}", pct=f"{row.usage * 100:.1f}", age=count_age(row_fresh)))
    code_detail(row)
    tabs = st.tabs([t("bindings.tab.history"), t("standby.title"), t("standby.history"),
                    *([t("bindings.tab.replace"), t("bindings.tab.unbind")] if can_act else [])])
    with tabs[1]:
        standby_tab(row)
    with tabs[2]:
        switch_history_tab(row)
    with tabs[0]:
        with db() as session:
            history = store_history.store_history(session=session, actor=actor, store_id=row.store_id)
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
        with tabs[3]:
            wanted_account = st.text_input(t("bindings.replace.search"), key=f"review_replace_search_{ref}")
            with db() as session:
                candidates, candidate_total = store_history.replacement_candidates(session=session, actor=actor,
                                                                            search=wanted_account,
                                                                            store_id=row.store_id)
                candidate_fresh = count_freshness(session=session, actor=actor,
                                                  account_ids=[a.id for a in candidates if a.id is not None])
            if candidate_total > len(candidates):
                st.caption(t("bindings.replace.candidates_cut", total=candidate_total, listed=len(candidates)))
            options = {"": t("bindings.replace.new_userid"), **{
                a.userid: t("bindings.replace.candidate", userid=a.userid, name=a.name,
                            status=t(f"account_status.{a.status}"), count=a.customer_count, limit=a.capacity_limit)
                + f" · {count_age(candidate_fresh.get(a.id or 0))}" for a in candidates}}
            with st.form(f"review_replace_{ref}", clear_on_submit=True):
                picked = st.selectbox(t("bindings.replace.pick"), list(options), format_func=options.get,
                                      key=f"review_replace_pick_{ref}")
                typed = st.text_input(t("bindings.replace.userid"), key=f"review_replace_userid_{ref}")
                name = st.text_input(t("bindings.replace.name"), key=f"review_replace_name_{ref}")
                if row.shown:
                    st.info(t("bindings.replace.keeps_entry"))
                show_now = row.shown or st.checkbox(t("bindings.replace.show_now"),
                                                    key=f"review_replace_show_now_{ref}")
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
                            st.session_state["review_flash"] = md("bindings.replace.done", store=row.crm_store_id,
                                                                 userid=userid.strip())
                            st.rerun()
        with tabs[4]:
            st.warning(md("bindings.unbind.warning", store=row.crm_store_id, userid=row.wecom_userid))
            sure = st.checkbox(t("bindings.unbind.confirm"), key=f"review_unbind_sure_{ref}")
            if st.button(t("bindings.unbind.submit"), disabled=not sure, key=f"review_unbind_{ref}"):
                with showing_errors():
                    with db() as session:
                        review.unbind(session=session, actor=actor, binding_id=row.binding_id,
                                      expected_version=row.version)
                    table.clear()
                    st.session_state["review_flash"] = md("bindings.unbind.done", store=row.crm_store_id)
                    st.rerun()

if can_act and total:
    # Made on request (each poster fetches WeCom's image), kept for these filters only.
    prepared = st.session_state.get("review_posters")
    if prepared is not None and prepared[0] != filters:
        st.session_state.pop("review_posters")
        prepared = None
    if st.button(t("codes.posters.prepare"), key="review_posters_prepare"):
        with showing_errors(), db() as session:
            matching, _ = review.search_bindings(session=session, actor=actor, filters=filters, limit=total)
            stores_with_codes = posters.poster_stores(session=session, actor=actor,
                                                      store_ids=[r.store_id for r in matching])
            archive = io.BytesIO()
            with st.spinner(t("codes.posters.prepare")):
                made = posters.write_posters(stores_with_codes, archive)
            prepared = st.session_state["review_posters"] = (filters, archive.getvalue(), made)
    if prepared is not None:
        _filters, archive_bytes, made = prepared
        if made.count == 0 and not made.failed:
            st.caption(t("codes.posters.none"))
        else:
            st.caption(t("codes.posters.done", count=made.count))
            if made.failed:
                st.warning(t("codes.posters.failed", count=len(made.failed), stores="、".join(made.failed[:20])))
            st.download_button(t("codes.posters.download"), archive_bytes, file_name="store-codes.zip",
                               mime="application/zip", key="review_posters_download")

if total and st.toggle(t("bindings.export"), key="review_export"):
    with db() as session:
        all_rows, _ = review.search_bindings(session=session, actor=actor, filters=filters, limit=total)
    download_buttons(binding_frame(all_rows), t("bindings.title"), shown_filters, "review_dl")

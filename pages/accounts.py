import pandas as pd
import streamlit as st

from base.errors import ConcurrentEdit
from base.problems import Problem
from base.timeutil import format_display
from console.ui.actions import showing_errors
from console.ui.context import db, page_actor
from console.ui.freshness import count_age
from console.ui.sync_now import sync_now
from console.ui.text import md
from console.ui.ticked_rows import TickedTable
from console.ui.widgets import download_buttons, page_window, pager
from core import settings_store
from core.auth.permissions import Capability
from core.capacity.freshness import chain_freshness, count_freshness
from core.directory import accounts as account_service
from core.directory import members as member_service
from db.models import AccountStatus
from i18n import error_text, t

actor = page_actor(Capability.view_directory)
can_edit = actor.can(Capability.manage_accounts)
st.title(t("accounts.title"))
TABLE_KEY = "accounts_table"
# The account the edit form was opened with (values and version).
BASIS_KEY = "accounts_edit_basis"
CONFLICT_KEY = "accounts_conflict"

flash = st.session_state.pop("accounts_flash", None)
if flash:
    st.success(flash)


def account_frame(rows: list[account_service.AccountRow], *, exported: bool = False) -> pd.DataFrame:
    """The list; each count with its age and stale flag (the export also with the time it was synced)."""
    columns = ["userid", "name", "status", "status_reason", "customer_count", "capacity_limit", "usage", "count_age",
               *(["synced"] if exported else []), "store", "sync_error"]
    with db() as session:
        fresh = count_freshness(session=session, actor=actor, account_ids=[r.account_id for r in rows])
    return pd.DataFrame([{
        "userid": r.userid, "name": r.name, "status": t(f"account_status.{r.status}"),
        "status_reason": error_text(Problem.decode(r.status_reason)) if r.status_reason else "",
        "customer_count": r.customer_count, "capacity_limit": r.capacity_limit, "usage": round(r.usage * 100, 1),
        "count_age": count_age(fresh.get(r.account_id)), "synced": format_display(r.count_synced_at),
        "store": f"{r.crm_store_id} {r.store_name}" if r.crm_store_id else "",
        "sync_error": error_text(Problem.decode(r.sync_error)) if r.sync_error else "",
    } for r in rows], columns=columns).rename(columns={c: t(f"accounts.col.{c}") for c in columns})


with db() as session:
    counts = chain_freshness(session=session, actor=actor)
if counts.stale:
    st.warning(t("accounts.stale_summary", stale=f"{counts.stale:,}", accounts=f"{counts.accounts:,}"))
sync_now(actor, "accounts_sync_now")


cols = st.columns([2, 1, 1, 1])
search = cols[0].text_input(t("accounts.search"), key="accounts_search")
status_options = {None: t("common.all"), **{s.value: t(f"account_status.{s.value}") for s in AccountStatus}}
status = cols[1].selectbox(t("accounts.filter.status"), list(status_options), format_func=status_options.get,
                           key="accounts_status")
bound_options = {None: t("common.all"), True: t("accounts.bound.yes"), False: t("accounts.bound.no")}
bound = cols[2].selectbox(t("accounts.filter.bound"), list(bound_options), format_func=bound_options.get,
                          key="accounts_bound")
with db() as session:
    levels = settings_store.effective_all(session=session)
usage_options = {None: t("common.all"), levels["capacity.warn_pct"]: f"≥ {levels['capacity.warn_pct']}%",
                 levels["capacity.critical_pct"]: f"≥ {levels['capacity.critical_pct']}%",
                 100: t("accounts.full")}
usage = cols[3].selectbox(t("accounts.filter.usage"), list(usage_options), format_func=usage_options.get,
                          key="accounts_usage")
filters = account_service.AccountFilter(status=status, bound=bound, usage_at_least_pct=usage, search=search)

offset, limit = page_window("accounts")
with db() as session:
    rows, total = account_service.search_accounts(session=session, actor=actor, filters=filters, offset=offset,
                                                  limit=limit)
# The list is sorted by usage, which a count sync changes: a tick whose account
# moved is cleared, and the form below keeps the values and version it was opened with.
table = TickedTable(TABLE_KEY, (filters, offset, limit), lambda seen, fresh: seen.account_id == fresh.account_id)
picked, moved = table.ticked(rows) if can_edit else ([], [])
if moved:
    st.warning(md("accounts.selection_changed", account=moved[0].userid))
if not rows:
    st.caption(t("common.no_rows"))
# Widths that keep every column on a 1440 px screen; a cut-off text shows in full when its cell is opened.
ACCOUNT_COLUMNS = {"userid": 100, "name": 120, "status": 50, "status_reason": 80, "customer_count": 64,
                   "capacity_limit": 70, "usage": 70, "count_age": 140, "store": 140, "sync_error": 100}
table.render(account_frame(rows), rows, selectable=can_edit, hide_index=True, width="stretch",
             selection_mode="single-row", column_config={
                 t(f"accounts.col.{c}"): st.column_config.Column(width=width) for c, width in ACCOUNT_COLUMNS.items()})
pager(total, "accounts")


def describe_changes(before: account_service.AccountRow, after: account_service.AccountRow) -> str:
    changes = []
    if before.status != after.status:
        changes.append(t("accounts.change", field=t("accounts.col.status"),
                         before=t(f"account_status.{before.status}"), after=t(f"account_status.{after.status}")))
    if before.capacity_limit != after.capacity_limit:
        changes.append(t("accounts.change", field=t("accounts.col.capacity_limit"),
                         before=before.capacity_limit, after=after.capacity_limit))
    return "；".join(changes) or t("accounts.change_none")


def edit_form(basis: account_service.AccountRow) -> None:
    """The edit form of one account, saved against the version it was opened with."""
    ref = basis.account_id
    limit_key, status_key = f"accounts_edit_limit_{ref}", f"accounts_edit_status_{ref}"
    st.subheader(md("accounts.edit_title", userid=basis.userid, name=basis.name))
    conflict = st.session_state.pop(CONFLICT_KEY, None)
    if conflict:
        st.error(conflict)
    with st.form(f"accounts_edit_{ref}"):
        new_limit = st.number_input(t("accounts.col.capacity_limit"), min_value=1,
                                    max_value=account_service.MAX_CAPACITY_LIMIT, value=basis.capacity_limit,
                                    step=100, key=limit_key)
        statuses = [s.value for s in AccountStatus]
        new_status = st.selectbox(t("accounts.col.status"), statuses, index=statuses.index(basis.status),
                                  format_func=lambda s: t(f"account_status.{s}"), key=status_key)
        if new_status == AccountStatus.disabled and basis.crm_store_id:
            st.caption(md("accounts.disable_note", store=basis.crm_store_id))
        if not st.form_submit_button(t("common.save"), type="primary"):
            return
    with showing_errors():
        try:
            with db() as session:
                account_service.update_account(session=session, actor=actor, account_id=ref,
                                               expected_version=basis.version, capacity_limit=int(new_limit),
                                               status=new_status)
        except ConcurrentEdit as exc:
            if exc.key != "accounts.changed_meanwhile":
                raise
            with db() as session:
                fresh = account_service.account_row(session=session, actor=actor, account_id=ref)
            # Show what the other operator changed, and reload the form with it.
            st.session_state[CONFLICT_KEY] = md("accounts.conflict", userid=basis.userid,
                                               changes=describe_changes(basis, fresh))
            st.session_state[BASIS_KEY] = fresh
            del st.session_state[limit_key], st.session_state[status_key]
            st.rerun()
        table.clear()
        st.session_state.pop(BASIS_KEY, None)
        st.session_state["accounts_flash"] = md("accounts.saved", userid=basis.userid)
        st.rerun()


if can_edit:
    if not picked:
        st.session_state.pop(BASIS_KEY, None)
        st.caption(t("accounts.pick_to_edit"))
    else:
        basis = st.session_state.get(BASIS_KEY)
        if basis is None or basis.account_id != picked[0].account_id:
            basis = st.session_state[BASIS_KEY] = picked[0]
        edit_form(basis)

if total and st.toggle(t("accounts.export"), key="accounts_export"):
    with db() as session:
        all_rows, _ = account_service.search_accounts(session=session, actor=actor, filters=filters, limit=total)
    download_buttons(account_frame(all_rows, exported=True), t("accounts.title"), [
        (t("accounts.filter.status"), status_options[status]), (t("accounts.filter.bound"), bound_options[bound]),
        (t("accounts.filter.usage"), usage_options[usage]),
        *([(t("common.export.search"), search.strip())] if search.strip() else [])], "accounts_dl")


def departed_section() -> None:
    """Departed members' customers awaiting transfer, by the store the member served last."""
    # A heading below the list, not a subheader: the subheader is the edit form's.
    st.markdown("#### " + t("accounts.departed.title"))
    st.caption(t("accounts.departed.caption"))
    with db() as session:
        departed = member_service.departed_members(session=session, actor=actor)
    if not departed:
        st.caption(t("accounts.departed.none"))
        return

    def store_of(member: member_service.DepartedMember) -> str:
        return f"{member.crm_store_id} {member.store_name}" if member.crm_store_id else t("accounts.departed.no_store")

    by_store: dict[str, list[member_service.DepartedMember]] = {}
    for member in departed:
        by_store.setdefault(store_of(member), []).append(member)
    for store, store_members in by_store.items():
        st.text(t("accounts.departed.store_total", store=store, members=len(store_members),
                  customers=sum(m.customers for m in store_members)))
    columns = ["store", "userid", "name", "customers", "dimission_time"]
    st.dataframe(pd.DataFrame([{
        "store": store_of(m), "userid": m.userid, "name": m.name, "customers": m.customers,
        "dimission_time": format_display(m.dimission_time),
    } for m in departed], columns=columns).rename(columns={c: t(f"accounts.departed.col.{c}") for c in columns}),
        hide_index=True, width="stretch")
    with st.expander(t("accounts.departed.details")):
        by_userid = {m.userid: m for m in departed}
        chosen = st.selectbox(t("accounts.departed.pick"), list(by_userid), key="accounts_departed_member",
                              format_func=lambda userid: t(
                                  "accounts.departed.member", store=store_of(by_userid[userid]), userid=userid,
                                  name=by_userid[userid].name, customers=by_userid[userid].customers))
        with db() as session:
            customers = member_service.customers_awaiting_transfer(session=session, actor=actor, userid=chosen)
        st.dataframe(pd.DataFrame([{
            t("accounts.departed.col.external_userid"): external_userid,
            t("accounts.departed.col.dimission_time"): format_display(dimission_time),
        } for external_userid, dimission_time in customers]), hide_index=True, width="stretch")


departed_section()

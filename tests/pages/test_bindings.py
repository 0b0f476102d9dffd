"""AppTest of 绑定审核 and 企微账号: bulk show through the confirmation dialog,
refusals named in the dialog, read-only branch managers, replace, account edit."""

from db.models import Account, Binding, Role
from i18n import t
from tests.support.apptest import run_app
from tests.support.factories import bind

TABLE = "review_table"


def select_rows(at, table, rows):
    """Tick rows (positions in the table as shown), as a browser click does."""
    at.session_state[f"{table}_{at.session_state[table + '_generation']}"] = {
        "selection": {"rows": rows, "columns": [], "cells": []}}
    at.run()


def column(at, name):
    return list(at.dataframe[0].value[t(name)])


def test_operator_bulk_shows_selected_rows_after_confirmation(session, org, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    first, second = bind(session, "000101", "acc1"), bind(session, "000102", "acc2", shown=True)
    bind(session, "000201", "acc3")
    at = run_app("bindings.py")
    assert not at.exception
    assert column(at, "bindings.col.crm_store_id") == ["000101", "000102", "000201"]
    assert column(at, "bindings.col.entry") == [t("entry_reason.hidden"), t("bindings.entry.visible"),
                                              t("entry_reason.hidden")]
    select_rows(at, TABLE, [0, 1])
    at.button(key="review_bulk_show").click().run()
    # Both rows are selected; both change (the shown one is still unreviewed).
    assert t("bindings.confirm_show", selected=2, changing=2) in [m.value for m in at.markdown]
    session.expire_all()
    assert not session.get(Binding, first.id).shown  # nothing before the confirmation
    at.button(key="review_confirm").click().run()
    assert not at.exception
    assert at.success[0].value == t("bindings.done_show", changed=2, unchanged=0)
    session.expire_all()
    assert session.get(Binding, first.id).shown and session.get(Binding, second.id).reviewed_at is not None
    assert column(at, "bindings.col.entry") == [t("bindings.entry.visible"), t("bindings.entry.visible"),
                                              t("entry_reason.hidden")]


def test_bulk_show_says_before_asking_which_rows_cannot_be_shown(session, org, make_user, as_user):
    """Issue 13 item 3: the dialog runs the checks first — a full account is named before
    确认, which then shows only the other rows."""
    as_user(make_user(Role.hq_admin))
    fine = bind(session, "000101", "acc1")
    full = bind(session, "000102", "full1", count=5000)
    bind(session, "000201", "south1")
    at = run_app("bindings.py")
    at.selectbox(key="review_branch").set_value(org["north"].id).run()
    assert column(at, "bindings.col.crm_store_id") == ["000101", "000102"]
    at.checkbox(key="review_all_matching").check().run()
    at.button(key="review_bulk_show").click().run()
    assert not at.exception
    assert t("bindings.confirm_refused", count=1) in [w.value for w in at.warning]
    problems = at.dataframe[-1].value
    assert list(problems[t("bindings.col.crm_store_id")]) == ["000102"]
    assert list(problems[t("bindings.col.problem")]) == [t("bindings.problem.account_full")]
    assert t("bindings.confirm_show", selected=2, changing=1) in [m.value for m in at.markdown]
    assert at.button(key="review_confirm").label == t("bindings.confirm_rest", count=1)
    session.expire_all()
    assert not session.get(Binding, fine.id).shown  # nothing before the confirmation
    at.button(key="review_confirm").click().run()
    assert not at.exception
    assert at.success[0].value == t("bindings.done_show", changed=1, unchanged=0)
    session.expire_all()
    assert session.get(Binding, fine.id).shown and not session.get(Binding, full.id).shown


def test_bulk_show_where_nothing_can_change_offers_no_confirm(session, org, make_user, as_user):
    as_user(make_user(Role.hq_admin))
    bind(session, "000102", "full1", count=5000)
    at = run_app("bindings.py")
    select_rows(at, TABLE, [0])
    at.button(key="review_bulk_show").click().run()
    assert not at.exception
    assert t("bindings.confirm_nothing", selected=1) in [i.value for i in at.info]
    assert "review_confirm" not in [b.key for b in at.button]


def test_branch_manager_reads_own_branch_without_actions(session, org, make_user, as_user):
    as_user(make_user(Role.branch_manager, org["south"]))
    bind(session, "000101", "north1", shown=True, reviewed=True)
    bind(session, "000201", "south1")
    at = run_app("bindings.py")
    assert not at.exception
    assert at.info[0].value == t("bindings.read_only")
    assert column(at, "bindings.col.crm_store_id") == ["000201"]
    assert column(at, "bindings.col.review") == [t("bindings.state.pending")]
    assert not [b for b in at.button if b.key in ("review_bulk_show", "review_bulk_hide")]
    select_rows(at, TABLE, [0])
    assert [tab.label for tab in at.tabs] == [t("bindings.tab.history"), t("standby.title"), t("standby.history")]


def test_operator_replaces_account_from_the_row_panel(session, org, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    old = bind(session, "000101", "old1", shown=True, count=5000)
    at = run_app("bindings.py")
    select_rows(at, TABLE, [0])
    # The confirmation says the live entry stays up; there is no "show at once" to tick.
    assert t("bindings.replace.keeps_entry") in [i.value for i in at.info]
    assert not [c for c in at.checkbox if c.key == f"review_replace_show_now_{old.id}"]
    at.text_input(key=f"review_replace_userid_{old.id}").input("new1")
    at.button[[b.label for b in at.button].index(t("bindings.replace.submit"))].click().run()
    assert not at.exception, at.exception
    assert at.success[0].value == t("bindings.replace.done", store="000101", userid="new1")
    session.expire_all()
    assert session.get(Binding, old.id).end_reason == "replaced"
    assert column(at, "bindings.col.wecom_userid") == ["new1"]
    # 换号 keeps a live entry up: it was shown, so it is shown on the new account.
    assert column(at, "bindings.col.entry") == [t("bindings.entry.visible")]


def test_operator_edits_capacity_limit_on_accounts_page(session, org, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    binding = bind(session, "000101", "acc1", count=5000, limit=5000)
    at = run_app("accounts.py")
    assert not at.exception
    assert list(at.dataframe[0].value[t("accounts.col.usage")]) == [100.0]
    select_rows(at, "accounts_table", [0])
    at.number_input(key=f"accounts_edit_limit_{binding.account_id}").set_value(8000)
    at.button[[b.label for b in at.button].index(t("common.save"))].click().run()
    assert not at.exception
    assert at.success[0].value == t("accounts.saved", userid="acc1")
    session.expire_all()
    assert session.get(Account, binding.account_id).capacity_limit == 8000


def test_viewer_cannot_edit_accounts(session, org, make_user, as_user):
    as_user(make_user(Role.viewer))
    bind(session, "000101", "acc1")
    at = run_app("accounts.py")
    assert not at.exception
    assert len(at.dataframe) == 1
    assert not [n for n in at.number_input if n.key.startswith("accounts_edit_limit")]
    assert t("accounts.pick_to_edit") not in [c.value for c in at.caption]


def test_overview_and_stores_page_say_what_the_api_says(session, org, make_user, as_user, api_key):
    """A full account behind a shown flag: the API answers visible: false, so the
    overview does not count it as shown and the stores page does not say so."""
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from console.web.entry_api import ROUTES

    as_user(make_user(Role.hq_operator))
    bind(session, "000101", "full1", shown=True, count=5000, limit=5000)
    bind(session, "000102", "fine1", shown=True, reviewed=True)
    bind(session, "000201", "spare1", shown=True, status="standby")
    with TestClient(Starlette(routes=ROUTES)) as client:
        api = {crm: client.get(f"/api/v1/stores/{crm}/entry", headers={"X-API-Key": api_key}).json()
               for crm in ("000101", "000102", "000201", "101")}
    assert [crm for crm, body in api.items() if body["visible"]] == ["000102"]
    assert api["000101"]["reason"] == "account_full" and api["000201"]["reason"] == "account_disabled"

    overview = run_app()
    assert not overview.exception
    tiles = {m.label: m.value for m in overview.metric}
    assert tiles[t("overview.visible_entries")] == "1"
    needs = overview.dataframe[0].value
    assert list(needs[t("stores.col.crm_store_id")]) == ["000101", "000201"]
    assert list(needs[t("overview.needs_action_reason")]) == [t("entry_reason.account_full"),
                                                             t("entry_reason.account_standby")]

    stores = run_app("stores.py")
    assert not stores.exception
    frame = stores.dataframe[0].value
    column = dict(zip(frame[t("stores.col.crm_store_id")], frame[t("stores.col.entry")], strict=True))
    # The API's answers in the console's words (a bound standby account named as such).
    assert {crm: column[crm] for crm in api} == {
        "000101": t("entry_reason.account_full"), "000102": t("bindings.entry.visible"),
        "000201": t("entry_reason.account_standby"), "101": t("entry_reason.no_binding")}

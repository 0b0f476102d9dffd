"""Two operators on 绑定审核 and 企微账号 at once, through the pages: operator A
acts on what A's page showed, operator B changes rows in between. A's action
never lands on other rows, never absorbs B's change, and says which rows changed."""

from sqlmodel import Session, select

from base.timeutil import utcnow
from core.bindings import review
from core.directory import accounts
from db.models import Account, Binding, Role
from i18n import t
from tests.support.apptest import run_app
from tests.support.factories import bind

TABLE = "review_table"


def tick(at, table, rows):
    """Tick rows (positions in the table as shown), as a browser click does."""
    at.session_state[f"{table}_{at.session_state[table + '_generation']}"] = {
        "selection": {"rows": rows, "columns": [], "cells": []}}
    at.run()


def ticked(at, table):
    try:
        state = at.session_state[f"{table}_{at.session_state[table + '_generation']}"]
    except KeyError:
        return []
    return list(state["selection"]["rows"])


def operator_b_shows(engine, actor, binding):
    with Session(engine) as other:
        review.set_shown(session=other, actor=actor, versions={binding.id: binding.version}, shown=True)
        other.commit()


def test_bulk_show_after_rows_moved_acts_on_nothing_and_names_the_row(engine, session, org, make_user, as_user):
    """A lists pending rows and ticks 000101; B shows 000101,
    so it leaves A's list and 000102 moves to its place. A's 显示 must not show
    000102."""
    operator_a, operator_b = make_user(Role.hq_operator), make_user(Role.hq_admin)
    as_user(operator_a)
    first, second = bind(session, "000101", "acc1"), bind(session, "000102", "acc2")
    at = run_app("bindings.py")
    at.selectbox(key="review_state").set_value("pending").run()
    tick(at, TABLE, [0])
    assert t("bindings.selected", count=1) in [c.value for c in at.caption]
    operator_b_shows(engine, operator_b.actor, first)
    at.button(key="review_bulk_show").click().run()
    assert not at.exception
    assert [w.value for w in at.warning] == [
        t("bindings.selection_changed", count=1, stores="000101 北京朝阳大悦城店")]
    assert not [m for m in at.markdown if t("bindings.confirm_title") in m.value]
    assert ticked(at, TABLE) == []                    # the tick no longer sits on 000102
    assert "review_confirm" not in [b.key for b in at.button]
    session.expire_all()
    assert session.get(Binding, second.id).shown is False and session.get(Binding, second.id).version == 1


def test_bulk_show_confirmed_after_a_change_applies_to_none(engine, session, org, make_user, as_user):
    """B changes a row while A's confirmation is open: A's confirm refuses the
    whole action and names the row, against the versions A's page showed."""
    operator_a, operator_b = make_user(Role.hq_operator), make_user(Role.hq_admin)
    as_user(operator_a)
    first, second = bind(session, "000101", "acc1"), bind(session, "000102", "acc2")
    at = run_app("bindings.py")
    tick(at, TABLE, [0, 1])
    at.button(key="review_bulk_show").click().run()
    texts = [m.value for m in at.markdown]
    assert t("bindings.confirm_show", selected=2, changing=2) in texts
    assert t("bindings.confirm_stores", stores="000101 北京朝阳大悦城店、000102 北京海淀银泰店") in texts
    operator_b_shows(engine, operator_b.actor, first)
    at.button(key="review_confirm").click().run()
    assert not at.exception
    assert at.error[0].value == t("bindings.rows_changed", count=1, stores="000101")
    problems = at.dataframe[-1].value
    assert list(problems[t("bindings.col.crm_store_id")]) == ["000101"]
    assert list(problems[t("bindings.col.problem")]) == [t("bindings.problem.changed")]
    session.expire_all()
    assert session.get(Binding, second.id).shown is False


def test_unbind_acts_on_the_chosen_store_only(engine, session, org, make_user, as_user):
    """A opens 000101's row panel and ticks 我确认要解绑; B shows 000101, so it
    leaves A's pending list and 000102 takes its place. A's 解绑 unbinds nothing
    and says 000101 changed; 000102 stays bound."""
    operator_a, operator_b = make_user(Role.hq_operator), make_user(Role.hq_admin)
    as_user(operator_a)
    first, second = bind(session, "000101", "acc1"), bind(session, "000102", "acc2")
    at = run_app("bindings.py")
    at.selectbox(key="review_state").set_value("pending").run()
    tick(at, TABLE, [0])
    assert [s.value for s in at.subheader] == [t("bindings.row_title", store="000101", name="北京朝阳大悦城店")]
    at.checkbox(key=f"review_unbind_sure_{first.id}").check().run()
    operator_b_shows(engine, operator_b.actor, first)
    at.button(key=f"review_unbind_{first.id}").click().run()
    assert not at.exception
    assert [w.value for w in at.warning] == [
        t("bindings.selection_changed", count=1, stores="000101 北京朝阳大悦城店")]
    assert not at.subheader and not at.success
    session.expire_all()
    assert session.get(Binding, first.id).ended_at is None and session.get(Binding, second.id).ended_at is None
    # Ticking 000102 now shows its own panel, with nothing carried over from 000101's.
    tick(at, TABLE, [0])
    assert [s.value for s in at.subheader] == [t("bindings.row_title", store="000102", name="北京海淀银泰店")]
    assert at.checkbox(key=f"review_unbind_sure_{second.id}").value is False


def test_replace_after_the_binding_changed_is_refused(engine, session, org, make_user, as_user):
    """Same place in the list, new version: B showed the entry after A opened the
    换号 form. A's 换号 does not go through on B's version."""
    operator_a, operator_b = make_user(Role.hq_operator), make_user(Role.hq_admin)
    as_user(operator_a)
    first = bind(session, "000101", "acc1")
    at = run_app("bindings.py")
    tick(at, TABLE, [0])
    at.text_input(key=f"review_replace_userid_{first.id}").input("new1")
    operator_b_shows(engine, operator_b.actor, first)
    submit = [b for b in at.button if b.label == t("bindings.replace.submit")][0]
    submit.click().run()
    assert not at.exception
    assert [w.value for w in at.warning] == [
        t("bindings.selection_changed", count=1, stores="000101 北京朝阳大悦城店")]
    session.expire_all()
    current = session.get(Binding, first.id)
    assert current.ended_at is None and current.shown and current.version == 2


def test_account_edit_after_another_operator_saved_names_the_change_and_reloads(engine, session, org, make_user,
                                                                               as_user):
    """A opens acc1's form; B disables acc1; A's save (limit
    8000) is refused, names what B changed, and the form reloads B's values. A
    saves again knowingly: B's status stays."""
    operator_a, operator_b = make_user(Role.hq_operator), make_user(Role.hq_admin)
    as_user(operator_a)
    binding = bind(session, "000101", "acc1", count=100)
    ref = binding.account_id
    at = run_app("accounts.py")
    tick(at, "accounts_table", [0])
    assert at.subheader[0].value == t("accounts.edit_title", userid="acc1", name="acc1客服")
    with Session(engine) as other:
        accounts.update_account(session=other, actor=operator_b.actor, account_id=ref, expected_version=1,
                                capacity_limit=5000, status="disabled")
        other.commit()
    at.number_input(key=f"accounts_edit_limit_{ref}").set_value(8000)
    save = [b for b in at.button if b.label == t("common.save")][0]
    save.click().run()
    assert not at.exception
    change = t("accounts.change", field=t("accounts.col.status"), before=t("account_status.active"),
               after=t("account_status.disabled"))
    assert [e.value for e in at.error] == [t("accounts.conflict", userid="acc1", changes=change)]
    assert at.number_input(key=f"accounts_edit_limit_{ref}").value == 5000
    assert at.selectbox(key=f"accounts_edit_status_{ref}").value == "disabled"
    session.expire_all()
    assert (session.get(Account, ref).capacity_limit, session.get(Account, ref).status) == (5000, "disabled")
    at.number_input(key=f"accounts_edit_limit_{ref}").set_value(8000)
    [b for b in at.button if b.label == t("common.save")][0].click().run()
    assert at.success[0].value == t("accounts.saved", userid="acc1")
    session.expire_all()
    account_row = session.get(Account, ref)
    assert (account_row.capacity_limit, account_row.status, account_row.version) == (8000, "disabled", 3)


def test_account_tick_does_not_move_to_another_account_after_a_sync(engine, session, org, make_user, as_user):
    """The list is sorted by usage: a count sync reorders it. A's tick on acc1
    must not turn into an edit form for the account now at that place."""
    as_user(make_user(Role.hq_operator))
    first = bind(session, "000101", "acc1", count=4000)
    bind(session, "000102", "acc2", count=1000)
    at = run_app("accounts.py")
    tick(at, "accounts_table", [0])
    assert at.subheader[0].value == t("accounts.edit_title", userid="acc1", name="acc1客服")
    with Session(engine) as sync:
        # The sync lists both accounts (so no count is stale); acc1's count fell.
        for account in sync.exec(select(Account)).all():
            account.count_synced_at = utcnow()
        sync.get(Account, first.account_id).customer_count = 10
        sync.commit()
    at.run()
    assert [w.value for w in at.warning] == [t("accounts.selection_changed", account="acc1")]
    assert not at.subheader
    assert not [n for n in at.number_input if n.key.startswith("accounts_edit_limit")]

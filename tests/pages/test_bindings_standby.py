"""AppTest of the bindings page's standby accounts: HQ edits a store's list in
order against the list it was shown; a branch manager reads it without a form;
the switch history names who switched and the usage then."""

from sqlmodel import col, select

from console.ui.text import md
from core.capacity.switch import switch_accounts
from db.models import Account, AccountStatus, Role, StandbyAccount
from i18n import t
from tests.pages.test_bindings import TABLE, column, select_rows
from tests.support.apptest import run_app
from tests.support.factories import bind, find_store, make_account


def standby_of(session, crm_store_id):
    session.expire_all()
    store = find_store(session, crm_store_id)
    return [session.get_one(Account, r.account_id).userid for r in session.exec(
        select(StandbyAccount).where(StandbyAccount.store_id == store.id)
        .order_by(col(StandbyAccount.position))).all()]


def form_text_area(at):
    return next(a for a in at.text_area if a.key and a.key.startswith("standby_text_"))


def save_button(at):
    return at.button[[b.label for b in at.button].index(t("standby.save"))]


def test_hq_adds_reorders_and_removes_standby_accounts(session, org, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    bind(session, "000101", "old1", shown=True)
    make_account(session, "spare_a", status="active")
    at = run_app("bindings.py")
    select_rows(at, TABLE, [0])
    assert t("standby.none") in [c.value for c in at.caption]
    form_text_area(at).input("spare_a\nspare_b")
    save_button(at).click().run()
    assert not at.exception, at.exception
    assert at.success[0].value == md("standby.saved", store="000101", userids="spare_a、spare_b")
    assert standby_of(session, "000101") == ["spare_a", "spare_b"]
    assert session.exec(select(Account).where(Account.userid == "spare_b")).one().status == AccountStatus.standby
    assert column(at, "bindings.col.standby") == ["spare_a、spare_b"]

    select_rows(at, TABLE, [0])
    form_text_area(at).input("spare_b")
    save_button(at).click().run()
    assert standby_of(session, "000101") == ["spare_b"]
    # Taken off the list: no longer reserved, an ordinary active account.
    assert session.exec(select(Account).where(Account.userid == "spare_a")).one().status == AccountStatus.active


def test_a_list_changed_by_someone_else_is_not_overwritten(session, org, make_user, as_user):
    as_user(make_user(Role.hq_admin))
    bind(session, "000101", "old1")
    at = run_app("bindings.py")
    select_rows(at, TABLE, [0])
    session.add(StandbyAccount(store_id=find_store(session, "000101").id,
                               account_id=make_account(session, "theirs", status="standby").id))
    session.commit()
    form_text_area(at).input("mine")
    save_button(at).click().run()
    assert not at.exception
    assert at.error[0].value == t("standby.changed_meanwhile", store="000101")
    assert standby_of(session, "000101") == ["theirs"]


def test_a_refused_userid_is_named_in_chinese_and_nothing_changes(session, org, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    bind(session, "000101", "old1")
    bind(session, "000102", "busy")
    at = run_app("bindings.py")
    select_rows(at, TABLE, [0])
    form_text_area(at).input("fine\nbusy")
    save_button(at).click().run()
    assert at.error[0].value == t("standby.current_elsewhere", userid="busy", store="000102")
    assert standby_of(session, "000101") == []


def test_branch_manager_reads_the_list_and_switch_history_but_cannot_edit(engine, session, org, make_user,
                                                                        as_user):
    as_user(make_user(Role.branch_manager, org["north"]))
    bind(session, "000101", "old1", shown=True, count=4800, name="老号")
    session.add(StandbyAccount(store_id=find_store(session, "000101").id,
                               account_id=make_account(session, "spare1", name="新号", status="standby").id))
    session.commit()
    switch_accounts(engine=engine)
    at = run_app("bindings.py")
    assert not at.exception
    select_rows(at, TABLE, [0])
    assert not [a for a in at.text_area if a.key and a.key.startswith("standby_text_")]
    assert t("standby.save") not in [b.label for b in at.button]
    history = next(d.value for d in at.dataframe if t("standby.hcol.reason") in d.value.columns)
    assert list(history[t("standby.hcol.reason")]) == [t("standby.reason.capacity")]
    assert list(history[t("standby.hcol.usage")]) == ["4,800/5,000（96.0%）"]
    assert list(history[t("standby.hcol.actor")]) == ["capacity-switch"]

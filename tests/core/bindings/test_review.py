"""HQ review of bindings: bulk show/hide all or nothing with per-row versions
(two sessions); replace (换号), unbind, history; scope and audit. The entry
rule itself is tested in test_entries.py."""

import json
import sqlite3
import threading
import time

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit, InvalidInput, PermissionDenied
from core.auth.permissions import system_actor
from core.bindings import entries, review, store_history
from db.models import Account, AccountSwitch, AuditEntry, Binding, JobRequest, Role
from tests.support.factories import bind, find_store, make_account

API = system_actor("test")


def entry(session, crm_store_id):
    session.expire_all()
    return entries.entry_for_store(session=session, actor=API, crm_store_id=crm_store_id)


def versions(*bindings: Binding) -> dict[int, int]:
    return {b.id: b.version for b in bindings}


def test_bulk_show_marks_reviewed_and_is_audited(session, org, make_user):
    operator = make_user(Role.hq_operator)
    a = bind(session, "000101", "acc1")
    b = bind(session, "000102", "acc2")
    result = review.set_shown(session=session, actor=operator.actor, versions=versions(a, b), shown=True)
    session.commit()
    assert (result.changed, result.unchanged) == (2, 0)
    for binding in (a, b):
        session.refresh(binding)
        assert binding.shown and binding.reviewed_by_id == operator.user.id and binding.reviewed_at is not None
        assert binding.version == 2
    assert entry(session, "000101").visible and entry(session, "000102").visible
    audits = session.exec(select(AuditEntry).where(AuditEntry.action == "binding.show")).all()
    assert len(audits) == 2
    assert json.loads(audits[0].before_json)["shown"] is False and json.loads(audits[0].after_json)["shown"] is True


def test_hide_keeps_review_state_and_rows_already_hidden_are_unchanged(session, org, make_user):
    operator = make_user(Role.hq_admin)
    shown = bind(session, "000101", "acc1", shown=True, reviewed=True)
    hidden = bind(session, "000102", "acc2")
    result = review.set_shown(session=session, actor=operator.actor, versions=versions(shown, hidden), shown=False)
    session.commit()
    assert (result.changed, result.unchanged) == (1, 1)
    session.refresh(shown)
    session.refresh(hidden)
    assert not shown.shown and shown.reviewed_at is not None and shown.version == 2
    assert hidden.version == 1 and hidden.reviewed_at is None
    assert entry(session, "000101").reason == "hidden"


def test_show_refuses_every_row_that_cannot_be_shown_and_applies_none(session, org, make_user):
    operator = make_user(Role.hq_operator)
    good = bind(session, "000101", "good")
    closed = bind(session, "000103", "closed")
    disabled = bind(session, "000201", "disabled", status="disabled")
    full = bind(session, "000202", "full", count=6000, limit=5000)
    with pytest.raises(review.BulkRefused) as refused:
        review.set_shown(session=session, actor=operator.actor, versions=versions(good, closed, disabled, full),
                         shown=True)
    session.rollback()
    assert refused.value.key == "bindings.cannot_show"
    assert {(p.crm_store_id, p.reason) for p in refused.value.problems} == {
        ("000103", "store_closed"), ("000201", "account_disabled"), ("000202", "account_full")}
    session.refresh(good)
    assert not good.shown and good.version == 1


def test_rows_changed_since_page_load_apply_to_none_two_sessions(engine, org, make_user):
    """Operator A loads the page; operator B hides one row; A's bulk show of
    both rows changes nothing and names the row B changed."""
    operator_a, operator_b = make_user(Role.hq_operator), make_user(Role.hq_admin)
    with Session(engine, expire_on_commit=False) as setup:
        first, second = bind(setup, "000101", "acc1", shown=True), bind(setup, "000102", "acc2")
    with Session(engine) as page_a:
        rows, _ = review.search_bindings(session=page_a, actor=operator_a.actor, filters=review.BindingFilter())
        seen = {r.binding_id: r.version for r in rows}
    with Session(engine) as session_b:
        review.set_shown(session=session_b, actor=operator_b.actor, versions={first.id: seen[first.id]},
                         shown=False)
        session_b.commit()
    with Session(engine) as session_a:
        with pytest.raises(review.BulkRefused) as refused:
            review.set_shown(session=session_a, actor=operator_a.actor, versions=seen, shown=True)
        session_a.rollback()
    assert refused.value.key == "bindings.rows_changed"
    assert [p.crm_store_id for p in refused.value.problems] == ["000101"]
    with Session(engine) as check:
        assert check.get(Binding, second.id).shown is False and check.get(Binding, second.id).version == 1
        assert check.get(Binding, first.id).shown is False


def _in_thread(fn):
    """Run fn in a thread; returns a callable giving its result or raising its error."""
    outcome = {}

    def run():
        try:
            outcome["result"] = fn()
        except Exception as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()

    def join():
        thread.join(timeout=30)
        assert not thread.is_alive()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    return join


def test_rows_already_in_the_wanted_state_stay_checked_until_commit(engine, db_url, org, make_user):
    """Operator A shows two stores, one of them already shown. Operator B hides
    that one and commits while A's action is under way: A must not report
    success over B's change (the check holds until A's commit)."""
    operator = make_user(Role.hq_operator)
    with Session(engine, expire_on_commit=False) as setup:
        already, pending = bind(setup, "000101", "acc1", shown=True), bind(setup, "000102", "acc2")
    other = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE binding SET shown = 0, version = version + 1 WHERE id = ?", (already.id,))

    def operator_a():
        with Session(engine) as session:
            review.set_shown(session=session, actor=operator.actor, versions=versions(already, pending),
                             shown=True)
            session.commit()

    result = _in_thread(operator_a)
    time.sleep(0.5)
    other.commit()
    other.close()
    with pytest.raises(review.BulkRefused) as refused:
        result()
    assert refused.value.key == "bindings.rows_changed"
    assert [p.crm_store_id for p in refused.value.problems] == ["000101"]
    with Session(engine) as check:
        assert check.get(Binding, pending.id).shown is False and check.get(Binding, already.id).shown is False


def test_rows_already_in_the_wanted_state_are_locked_on_postgresql(pg_org):
    """The same on PostgreSQL (READ COMMITTED): A's read locks the rows, so B's
    uncommitted hide makes A wait and then refuse."""
    engine = pg_org.engine
    operator = system_actor("pg-test")
    with Session(engine, expire_on_commit=False) as setup:
        already, pending = bind(setup, "000101", "acc1", shown=True), bind(setup, "000102", "acc2")
    with Session(engine) as other:
        other.exec(update(Binding).where(col(Binding.id) == already.id)
                   .values(shown=False, version=Binding.version + 1))

        def operator_a():
            with Session(engine) as session:
                review.set_shown(session=session, actor=operator, versions=versions(already, pending), shown=True)
                session.commit()

        result = _in_thread(operator_a)
        time.sleep(0.5)
        other.commit()
    with pytest.raises(review.BulkRefused) as refused:
        result()
    assert [p.crm_store_id for p in refused.value.problems] == ["000101"]
    with Session(engine) as check:
        assert check.get(Binding, pending.id).shown is False


def test_branch_manager_and_viewer_cannot_act(session, org, make_user):
    binding = bind(session, "000101", "acc1")
    for user in (make_user(Role.branch_manager, org["north"]), make_user(Role.viewer)):
        with pytest.raises(PermissionDenied):
            review.set_shown(session=session, actor=user.actor, versions=versions(binding), shown=True)
        with pytest.raises(PermissionDenied):
            review.unbind(session=session, actor=user.actor, binding_id=binding.id, expected_version=1)


def test_agency_operator_acts_only_in_own_branch(session, org, make_user):
    agency = make_user(Role.hq_operator, org["south"])
    north = bind(session, "000101", "acc1")
    south = bind(session, "000201", "acc2")
    with pytest.raises(PermissionDenied):
        review.set_shown(session=session, actor=agency.actor, versions=versions(north, south), shown=True)
    session.rollback()
    review.set_shown(session=session, actor=agency.actor, versions=versions(south), shown=True)
    rows, total = review.search_bindings(session=session, actor=agency.actor, filters=review.BindingFilter())
    assert total == 1 and rows[0].crm_store_id == "000201"
    with pytest.raises(PermissionDenied):
        review.search_bindings(session=session, actor=agency.actor,
                               filters=review.BindingFilter(branch_id=org["north"].id))


def test_filters(session, org, make_user):
    operator = make_user(Role.hq_operator)
    bind(session, "000101", "acc_warn", count=3600)                        # 72 %
    bind(session, "000102", "acc_crit", count=4600, shown=True, reviewed=True)  # 92 %
    bind(session, "101", "acc_full", count=5000)
    bind(session, "000201", "acc_off", status="disabled")

    def ids(**kwargs):
        rows, total = review.search_bindings(session=session, actor=operator.actor,
                                             filters=review.BindingFilter(**kwargs))
        assert total == len(rows)
        return [r.crm_store_id for r in rows]

    assert ids() == ["000101", "000102", "000201", "101"]
    assert ids(review="pending") == ["000101", "000201", "101"]
    assert ids(review="reviewed") == ["000102"]
    assert ids(shown=True) == ["000102"]
    assert ids(account_status="disabled") == ["000201"]
    assert ids(usage_band="normal") == ["000201"]
    assert ids(usage_band="warn") == ["000101"]
    assert ids(usage_band="critical") == ["000102"]
    assert ids(usage_band="full") == ["101"]
    assert ids(entry="visible") == ["000102"]
    assert ids(entry="account_full") == ["101"]
    assert ids(branch_id=org["south"].id) == ["000201"]
    assert ids(search="0001") == ["000101", "000102"]
    assert ids(search="朝阳") == ["000101"]
    assert ids(search="ACC_OFF") == ["000201"]
    assert ids(search="100%") == []
    with pytest.raises(InvalidInput):
        ids(usage_band="bogus")


def test_branch_manager_reads_own_branch_with_review_state(session, org, make_user):
    manager = make_user(Role.branch_manager, org["north"])
    bind(session, "000101", "acc1", shown=True, reviewed=True)
    bind(session, "000201", "acc2")
    rows, total = review.search_bindings(session=session, actor=manager.actor, filters=review.BindingFilter())
    assert total == 1 and rows[0].crm_store_id == "000101" and rows[0].reviewed_at is not None


def test_replace_with_standby_account_keeps_a_live_entry_up(session, org, make_user):
    operator = make_user(Role.hq_operator)
    old = bind(session, "000101", "old1", shown=True, reviewed=True, count=5000)
    standby = make_account(session, "spare1", status="standby")
    new = review.replace_account(session=session, actor=operator.actor, binding_id=old.id,
                                 expected_version=old.version, userid="SPARE1")
    session.commit()
    session.refresh(old)
    assert old.end_reason == "replaced" and old.ended_at is not None
    # The entry stays up: the new binding is shown, reviewed by the operator who chose the account.
    assert new.account_id == standby.id and new.shown and new.reviewed_by_id == operator.user.id
    session.refresh(standby)
    assert standby.status == "active"
    # The old account stays listed for ongoing operation, unchanged.
    assert session.get(Account, old.account_id).status == "active"
    assert entry(session, "000101").visible
    actions = [a.action for a in session.exec(select(AuditEntry).order_by(AuditEntry.id)).all()]
    assert actions == ["account.update", "binding.end", "binding.start", "binding.replace"]
    switch = session.exec(select(AccountSwitch)).one()
    assert (switch.reason, switch.usage_pct, switch.actor_id) == ("replaced", 100.0, operator.user.id)
    # The contact code follows: its sync is queued.
    assert [r.job_id for r in session.exec(select(JobRequest)).all()] == ["codes.sync"]


def test_replace_of_a_hidden_entry_stays_hidden(session, org, make_user):
    operator = make_user(Role.hq_operator)
    old = bind(session, "000101", "old1", shown=False)
    new = review.replace_account(session=session, actor=operator.actor, binding_id=old.id,
                                 expected_version=old.version, userid="spare2")
    session.commit()
    assert not new.shown and new.reviewed_at is None
    assert entry(session, "000101").reason == "hidden"


def test_replace_with_new_userid_and_show_at_once(session, org, make_user):
    operator = make_user(Role.hq_operator)
    old = bind(session, "000101", "old1", shown=True)
    new = review.replace_account(session=session, actor=operator.actor, binding_id=old.id, expected_version=1,
                                 userid=" brand.new@x ", name="新客服", show_now=True)
    session.commit()
    assert new.shown and new.reviewed_by_id == operator.user.id
    created = session.get(Account, new.account_id)
    assert (created.userid, created.name, created.status) == ("brand.new@x", "新客服", "active")
    assert entry(session, "000101").as_json()["wecom_userid"] == "brand.new@x"


def test_replace_refusals_change_nothing(session, org, make_user):
    operator = make_user(Role.hq_operator)
    old = bind(session, "000101", "old1", shown=True)
    bind(session, "000102", "busy1")
    make_account(session, "off1", status="disabled")
    make_account(session, "full1", count=5000)
    cases = [("busy1", False, "bindings.account_in_use"), ("off1", False, "bindings.account_disabled"),
             ("old1", False, "bindings.same_account"), ("bad userid!", False, "accounts.bad_userid"),
             ("full1", True, "bindings.cannot_show_account_full")]
    for userid, show_now, key in cases:
        with pytest.raises(InvalidInput) as refused:
            review.replace_account(session=session, actor=operator.actor, binding_id=old.id, expected_version=1,
                                   userid=userid, show_now=show_now)
        session.rollback()
        assert refused.value.key == key
    with pytest.raises(ConcurrentEdit):
        review.replace_account(session=session, actor=operator.actor, binding_id=old.id, expected_version=0,
                               userid="spare9")
    session.rollback()
    session.refresh(old)
    assert old.ended_at is None and old.version == 1
    assert entry(session, "000101").visible


def test_unbind_and_history(session, org, make_user):
    operator = make_user(Role.hq_operator)
    manager = make_user(Role.branch_manager, org["north"])
    first = bind(session, "000101", "first1", shown=True)
    second = review.replace_account(session=session, actor=operator.actor, binding_id=first.id,
                                    expected_version=1, userid="second1")
    session.commit()
    review.unbind(session=session, actor=operator.actor, binding_id=second.id, expected_version=second.version)
    session.commit()
    store_id = find_store(session, "000101").id
    history = store_history.store_history(session=session, actor=manager.actor, store_id=store_id)
    assert [(h.wecom_userid, h.end_reason, h.ended_by) for h in history] == [
        ("second1", "unbound", operator.user.username), ("first1", "replaced", operator.user.username)]
    south_manager = make_user(Role.branch_manager, org["south"])
    with pytest.raises(PermissionDenied):
        store_history.store_history(session=session, actor=south_manager.actor, store_id=store_id)


def test_replacement_candidates(session, org, make_user):
    operator = make_user(Role.hq_operator)
    bind(session, "000101", "bound1")
    make_account(session, "spare1", status="standby")
    make_account(session, "free1")
    make_account(session, "off1", status="disabled")
    make_account(session, "full1", count=5000)
    candidates, total = store_history.replacement_candidates(session=session, actor=operator.actor)
    assert [a.userid for a in candidates] == ["spare1", "free1"] and total == 2
    found, total = store_history.replacement_candidates(session=session, actor=operator.actor, search="FREE")
    assert [a.userid for a in found] == ["free1"] and total == 1
    first, total = store_history.replacement_candidates(session=session, actor=operator.actor, limit=1)
    assert [a.userid for a in first] == ["spare1"] and total == 2



def test_another_stores_standby_is_not_offered_for_replace(session, org, make_user):
    from db.models import StandbyAccount

    operator = make_user(Role.hq_operator)
    own, theirs = make_account(session, "own1", status="standby"), make_account(session, "theirs1", status="standby")
    session.add(StandbyAccount(store_id=find_store(session, "000101").id, account_id=own.id))
    session.add(StandbyAccount(store_id=find_store(session, "000102").id, account_id=theirs.id))
    session.commit()
    offered, _ = store_history.replacement_candidates(session=session, actor=operator.actor,
                                               store_id=find_store(session, "000101").id)
    assert [a.userid for a in offered] == ["own1"]
    old = bind(session, "000101", "old1")
    with pytest.raises(InvalidInput) as refused:
        review.replace_account(session=session, actor=operator.actor, binding_id=old.id, expected_version=1,
                               userid="theirs1")
    assert refused.value.key == "standby.reserved_elsewhere"


def test_two_operators_taking_the_same_account_get_a_conflict_not_a_crash(session, org, make_user, monkeypatch):
    """The check "is this account free?" ran before another operator's commit
    (PostgreSQL READ COMMITTED allows that): the unique index refuses the second
    binding, and the operator gets a conflict message, nothing half-written."""
    operator = make_user(Role.hq_operator)
    old = bind(session, "000101", "old1", shown=True)
    taken = bind(session, "000102", "spare1")      # the other operator's binding, committed
    monkeypatch.setattr(review.bindings, "current_for_account", lambda **_: None)
    with pytest.raises(ConcurrentEdit) as conflict:
        review.replace_account(session=session, actor=operator.actor, binding_id=old.id, expected_version=1,
                               userid="spare1")
    session.rollback()
    assert conflict.value.key == "bindings.taken_meanwhile" and conflict.value.params == {"account": "spare1"}
    session.expire_all()
    assert session.get(Binding, old.id).ended_at is None
    assert session.get(Binding, taken.id).ended_at is None


def test_two_operators_taking_the_same_account_on_postgresql(pg_org):
    """Stores of two branches (one branch's counters would make the second wait
    for the first): both checks pass, the unique index decides."""
    engine = pg_org.engine
    first_operator, second_operator = system_actor("pg-a"), system_actor("pg-b")
    with Session(engine, expire_on_commit=False) as setup:
        one, two = bind(setup, "000101", "old1"), bind(setup, "000201", "old2")
        make_account(setup, "free1")
    with Session(engine) as first:
        review.replace_account(session=first, actor=first_operator, binding_id=one.id, expected_version=1,
                               userid="free1")

        def second_replace():
            with Session(engine) as second:
                review.replace_account(session=second, actor=second_operator, binding_id=two.id,
                                       expected_version=1, userid="free1")
                second.commit()

        result = _in_thread(second_replace)      # waits on the unique index behind the first
        time.sleep(0.5)
        first.commit()
    with pytest.raises(ConcurrentEdit) as conflict:
        result()
    assert conflict.value.key == "bindings.taken_meanwhile"
    with Session(engine) as check:
        assert check.get(Binding, two.id).ended_at is None


def test_a_locked_database_is_a_conflict_message(engine, db_url, session, org, make_user):
    operator = make_user(Role.hq_operator)
    binding = bind(session, "000101", "acc1")
    # Wait 0.1 s, not the engine's 15 s, for the lock another writer holds.
    session.connection().exec_driver_sql("PRAGMA busy_timeout=100")
    other = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    other.execute("BEGIN IMMEDIATE")
    try:
        for action in (
            lambda: review.unbind(session=session, actor=operator.actor, binding_id=binding.id,
                                  expected_version=1),
            lambda: review.set_shown(session=session, actor=operator.actor, versions=versions(binding),
                                     shown=True),
        ):
            with pytest.raises(ConcurrentEdit) as busy:
                action()
            session.rollback()
            assert busy.value.key == "conflict.database_busy"
    finally:
        other.rollback()
        other.close()


def test_agency_operator_replaces_only_with_accounts_of_own_branch(session, org, make_user):
    agency = make_user(Role.hq_operator, org["south"])
    hq = make_user(Role.hq_operator)
    south = bind(session, "000201", "south1")
    north = bind(session, "000101", "north1")
    make_account(session, "never1", status="standby")                       # never served a store
    # north1 stops serving 000101: it stays listed, last used in the north branch.
    review.unbind(session=session, actor=hq.actor, binding_id=north.id, expected_version=1)
    south_old = bind(session, "000202", "southold1")
    review.unbind(session=session, actor=hq.actor, binding_id=south_old.id, expected_version=1)
    session.commit()
    candidates, _ = store_history.replacement_candidates(session=session, actor=agency.actor)
    assert [a.userid for a in candidates] == ["southold1"]
    everything, _ = store_history.replacement_candidates(session=session, actor=hq.actor)
    assert [a.userid for a in everything] == ["never1", "north1", "southold1"]
    for userid in ("north1", "never1"):
        with pytest.raises(PermissionDenied) as refused:
            review.replace_account(session=session, actor=agency.actor, binding_id=south.id, expected_version=1,
                                   userid=userid)
        session.rollback()
        assert refused.value.key == "bindings.account_out_of_scope"
    review.replace_account(session=session, actor=agency.actor, binding_id=south.id, expected_version=1,
                           userid="southold1")
    session.commit()
    assert entry(session, "000201").wecom_userid == "southold1"

"""The account list (count, limit, usage, status, store) and edits of capacity
limit and status: version check, audit, and what a disabled account does."""

import json

import pytest
from sqlmodel import Session, select

from base.errors import ConcurrentEdit, InvalidInput, PermissionDenied
from core import overview
from core.auth.permissions import system_actor
from core.bindings import entries
from core.directory import accounts
from db.models import Account, AuditEntry, Role
from tests.support.factories import bind, make_account


def test_list_shows_usage_and_store_fullest_first(session, org, make_user):
    viewer = make_user(Role.viewer)
    bind(session, "000101", "half1", count=2500)
    bind(session, "000201", "full1", count=5000)
    make_account(session, "spare1", status="standby")
    rows, total = accounts.search_accounts(session=session, actor=viewer.actor, filters=accounts.AccountFilter())
    assert total == 3
    assert [(r.userid, r.crm_store_id, round(r.usage, 2), r.full) for r in rows] == [
        ("full1", "000201", 1.0, True), ("half1", "000101", 0.5, False), ("spare1", None, 0.0, False)]
    unbound, _ = accounts.search_accounts(session=session, actor=viewer.actor,
                                          filters=accounts.AccountFilter(bound=False))
    assert [r.userid for r in unbound] == ["spare1"]
    near, _ = accounts.search_accounts(session=session, actor=viewer.actor,
                                       filters=accounts.AccountFilter(usage_at_least_pct=70))
    assert [r.userid for r in near] == ["full1"]
    found, _ = accounts.search_accounts(session=session, actor=viewer.actor,
                                        filters=accounts.AccountFilter(search="HALF"))
    assert [r.userid for r in found] == ["half1"]


def test_branch_manager_sees_accounts_of_own_branch_only(session, org, make_user):
    manager = make_user(Role.branch_manager, org["north"])
    bind(session, "000101", "north1")
    bind(session, "000201", "south1")
    make_account(session, "spare1", status="standby")
    rows, total = accounts.search_accounts(session=session, actor=manager.actor, filters=accounts.AccountFilter())
    assert total == 1 and rows[0].userid == "north1"


def test_edit_limit_and_status_audited_with_before_and_after(session, org, make_user):
    operator = make_user(Role.hq_operator)
    binding = bind(session, "000101", "acc1", shown=True, count=5000, limit=5000)
    assert entries.entry_for_store(session=session, actor=operator.actor, crm_store_id="000101").reason == \
        "account_full"
    edited = accounts.update_account(session=session, actor=operator.actor, account_id=binding.account_id,
                                     expected_version=1, capacity_limit=10000, status="active")
    session.commit()
    assert (edited.capacity_limit, edited.version) == (10000, 2)
    assert entries.entry_for_store(session=session, actor=operator.actor, crm_store_id="000101").visible
    audit = session.exec(select(AuditEntry).where(AuditEntry.action == "account.update")).one()
    assert json.loads(audit.before_json)["capacity_limit"] == 5000
    assert json.loads(audit.after_json)["capacity_limit"] == 10000
    assert audit.actor_name == operator.user.username and audit.branch_id == org["north"].id


def test_disabling_stops_the_store_being_served_and_lists_it(session, org, make_user):
    operator = make_user(Role.hq_admin)
    binding = bind(session, "000101", "acc1", shown=True)
    accounts.update_account(session=session, actor=operator.actor, account_id=binding.account_id,
                            expected_version=1, capacity_limit=5000, status="disabled")
    session.commit()
    assert entries.entry_for_store(session=session, actor=operator.actor, crm_store_id="000101").reason == \
        "account_disabled"
    assert [(n.crm_store_id, n.reason) for n in overview.needs_action(session=session, actor=operator.actor).items] \
        == [("000101", "account_disabled")]


def test_concurrent_edits_do_not_overwrite(engine, org, make_user):
    first, second = make_user(Role.hq_operator), make_user(Role.hq_admin)
    with Session(engine, expire_on_commit=False) as setup:
        target = make_account(setup, "acc1")
    with Session(engine) as one, Session(engine) as two:
        accounts.update_account(session=one, actor=first.actor, account_id=target.id, expected_version=1,
                                capacity_limit=8000, status="active")
        one.commit()
        with pytest.raises(ConcurrentEdit):
            accounts.update_account(session=two, actor=second.actor, account_id=target.id, expected_version=1,
                                    capacity_limit=6000, status="standby")
    with Session(engine) as check:
        row = check.get(Account, target.id)
        assert (row.capacity_limit, row.status, row.version) == (8000, "active", 2)


def test_bad_input_and_permissions(session, org, make_user):
    target = make_account(session, "acc1")
    admin = system_actor("test")
    for limit, status, key in [(0, "active", "accounts.bad_capacity_limit"),
                               (accounts.MAX_CAPACITY_LIMIT + 1, "active", "accounts.bad_capacity_limit"),
                               (100, "retired", "accounts.bad_status")]:
        with pytest.raises(InvalidInput) as refused:
            accounts.update_account(session=session, actor=admin, account_id=target.id, expected_version=1,
                                    capacity_limit=limit, status=status)
        assert refused.value.key == key
    for role in (Role.branch_manager, Role.viewer):
        user = make_user(role, org["north"] if role == Role.branch_manager else None)
        with pytest.raises(PermissionDenied):
            accounts.update_account(session=session, actor=user.actor, account_id=target.id, expected_version=1,
                                    capacity_limit=100, status="active")
    session.refresh(target)
    assert (target.capacity_limit, target.version) == (5000, 1)


def test_agency_operator_edits_only_accounts_serving_its_branch(session, org, make_user):
    agency = make_user(Role.hq_operator, org["north"])
    own = bind(session, "000101", "north1")
    other = bind(session, "000201", "south1")
    spare = make_account(session, "spare1", status="standby")
    for account_id in (other.account_id, spare.id):
        with pytest.raises(PermissionDenied):
            accounts.update_account(session=session, actor=agency.actor, account_id=account_id, expected_version=1,
                                    capacity_limit=100, status="disabled")
        session.rollback()
    accounts.update_account(session=session, actor=agency.actor, account_id=own.account_id, expected_version=1,
                            capacity_limit=6000, status="active")
    session.commit()
    assert accounts.account_row(session=session, actor=agency.actor, account_id=own.account_id).capacity_limit == 6000
    for account_id in (other.account_id, spare.id):
        assert session.get(Account, account_id).version == 1

"""The entry rule (core/bindings/entries.py): an entry is visible only when the
store is open, the binding current, the flag shown, and the account active and
not full. Every reason; and the SQL expression, the client API, the export, the
stores and bindings pages' column and the overview agree, on SQLite and PostgreSQL."""

import json

import pytest
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.testclient import TestClient

from console.cli import main as cli_main
from console.web.entry_api import ROUTES
from core import overview
from core.auth.permissions import system_actor
from core.bindings import entries, review
from core.directory import accounts, stores
from db.models import Account, Binding, Role
from tests.support.factories import bind, find_store

API = system_actor("test")


def entry(session, crm_store_id):
    session.expire_all()
    return entries.entry_for_store(session=session, actor=API, crm_store_id=crm_store_id)


def versions(*bindings: Binding) -> dict[int, int]:
    return {b.id: b.version for b in bindings}


@pytest.fixture
def api(db_url, api_key):
    """What the client API answers for a store, over HTTP."""
    with TestClient(Starlette(routes=ROUTES)) as client:
        yield lambda crm_store_id: client.get(f"/api/v1/stores/{crm_store_id}/entry",
                                              headers={"X-API-Key": api_key}).json()


def edit_account(session, operator, binding, **changes) -> None:
    """Change the bound account's limit or status the way the accounts page does."""
    account = session.get(Account, binding.account_id)
    session.refresh(account)
    accounts.update_account(session=session, actor=operator.actor, account_id=account.id,
                            expected_version=account.version,
                            **{"capacity_limit": account.capacity_limit, "status": account.status, **changes})
    session.commit()


def test_each_reason_and_the_one_visible_case(session, org):
    bind(session, "000101", "visible1", shown=True, count=10)
    bind(session, "000102", "hidden1", shown=False)
    bind(session, "000103", "closed1", shown=True)              # store 000103 is closed
    bind(session, "000201", "disabled1", shown=True, status="disabled")
    bind(session, "000202", "full1", shown=True, count=5000, limit=5000)
    store_id = find_store(session, "000101").id
    assert entry(session, "000101").as_json() == {
        "crm_store_id": "000101", "visible": True, "wecom_userid": "visible1", "wecom_name": "visible1客服",
        "qr_code": f"https://wework.qpic.cn/wwpic/test{store_id}/0", "contact_link": None}
    reasons = {crm: entry(session, crm).reason for crm in ("000102", "000103", "000201", "000202", "101")}
    assert reasons == {"000102": "hidden", "000103": "store_closed", "000201": "account_disabled",
                       "000202": "account_full", "101": "no_binding"}
    hidden = entry(session, "000102").as_json()
    assert hidden == {"crm_store_id": "000102", "visible": False, "wecom_userid": None, "wecom_name": None,
                      "qr_code": None, "contact_link": None, "reason": "hidden"}
    # "000101" and "101" are different stores; an unknown one is None.
    assert entry(session, "101").reason == "no_binding"
    assert entry(session, "0101") is None


def test_serving_problems_come_before_the_operators_flag(session, org):
    """A hidden entry whose account cannot serve still needs action, so it names the account's problem."""
    bind(session, "000101", "full1", count=5000)
    bind(session, "000102", "off1", status="disabled")
    bind(session, "000103", "closedfull1", status="disabled", count=5000)     # store 000103 is closed
    bind(session, "000201", "offfull1", shown=True, status="disabled", count=5000)
    assert {crm: entry(session, crm).reason for crm in ("000101", "000102", "000103", "000201")} == {
        "000101": "account_full", "000102": "account_disabled", "000103": "store_closed",
        "000201": "account_disabled"}


def test_full_is_derived_from_count_and_limit(session, org):
    binding = bind(session, "000101", "almost", shown=True, count=4999, limit=5000)
    assert entry(session, "000101").visible
    account_row = session.get(Account, binding.account_id)
    account_row.customer_count = 5000
    session.commit()
    assert entry(session, "000101").reason == "account_full"


def test_a_count_exactly_at_the_limit_is_full_until_the_limit_is_raised(session, org, make_user):
    operator = make_user(Role.hq_operator)
    at_limit = bind(session, "000101", "atlimit1", shown=True, count=3000, limit=3000)
    over_limit = bind(session, "000102", "over1", shown=True, count=3001, limit=3000)
    assert entry(session, "000101").reason == "account_full"
    assert entry(session, "000102").reason == "account_full"
    edit_account(session, operator, at_limit, capacity_limit=3001)
    assert entry(session, "000101").visible
    edit_account(session, operator, over_limit, capacity_limit=3001)
    assert entry(session, "000102").reason == "account_full"
    edit_account(session, operator, at_limit, capacity_limit=2000)     # a lowered limit fills it again
    assert entry(session, "000101").reason == "account_full"


def test_a_re_enabled_account_serves_again(session, org, make_user):
    operator = make_user(Role.hq_operator)
    disabled = bind(session, "000101", "off1", shown=True)
    edit_account(session, operator, disabled, status="disabled")
    assert entry(session, "000101").reason == "account_disabled"
    edit_account(session, operator, disabled, status="active")
    assert entry(session, "000101").as_json()["wecom_userid"] == "off1"
    standby = bind(session, "000102", "spare1", shown=True, status="standby")
    assert entry(session, "000102").reason == "account_disabled"
    edit_account(session, operator, standby, status="active")
    assert entry(session, "000102").visible


def test_ended_binding_means_no_binding(session, org, make_user):
    operator = make_user(Role.hq_operator)
    binding = bind(session, "000101", "acc1", shown=True)
    review.unbind(session=session, actor=operator.actor, binding_id=binding.id, expected_version=binding.version)
    session.commit()
    assert entry(session, "000101").reason == "no_binding"


def test_bound_standby_account_reads_as_standby_in_the_console(session, org, make_user):
    operator = make_user(Role.hq_operator)
    binding = bind(session, "000101", "spare1", status="standby")
    assert entry(session, "000101").reason == "account_disabled"     # the API's fixed reason set
    rows, _ = review.search_bindings(session=session, actor=operator.actor, filters=review.BindingFilter())
    assert rows[0].entry_reason == "account_standby" and not rows[0].visible
    standby_rows, _ = review.search_bindings(session=session, actor=operator.actor,
                                             filters=review.BindingFilter(entry="account_standby"))
    assert [r.crm_store_id for r in standby_rows] == ["000101"]
    with pytest.raises(review.BulkRefused) as refused:
        review.set_shown(session=session, actor=operator.actor, versions=versions(binding), shown=True)
    session.rollback()
    assert [(p.crm_store_id, p.reason) for p in refused.value.problems] == [("000101", "account_standby")]


def test_a_branch_reader_gets_the_same_answer_for_its_own_stores_only(session, org, make_user):
    """A branch-scoped reader goes through SQLAlchemy, the API's key through the driver: same answers."""
    bind(session, "000101", "visible1", shown=True)
    bind(session, "000102", "full1", shown=True, count=5000)
    north = make_user(Role.branch_manager, org["north"]).actor
    for crm_store_id in ("000101", "000102", "101", "000103"):
        assert entries.entry_for_store(session=session, actor=north, crm_store_id=crm_store_id) == \
            entry(session, crm_store_id)
    assert entries.entry_for_store(session=session, actor=north, crm_store_id="000201") is None
    assert [e.crm_store_id for e in entries.all_entries(session=session, actor=north)] == [
        "000101", "000102", "000103", "101"]


def test_the_stores_and_bindings_lists_and_the_overview_say_what_the_api_says(session, org, make_user):
    viewer = make_user(Role.viewer).actor
    bind(session, "000101", "visible1", shown=True)
    bind(session, "000102", "hidden1")
    bind(session, "000103", "closed1", shown=True)
    bind(session, "000201", "spare1", shown=True, status="standby")
    bind(session, "000202", "full1", shown=True, count=5000)
    api = {e.crm_store_id: e.reason for e in entries.all_entries(session=session, actor=API)}
    assert api == {"000101": None, "000102": "hidden", "000103": "store_closed", "000201": "account_disabled",
                   "000202": "account_full", "101": "no_binding"}

    def as_api(reason):  # the console tells a standby account apart
        return "account_disabled" if reason == "account_standby" else reason

    store_rows, _ = stores.search_stores(session=session, actor=viewer, filters=stores.StoreFilter())
    assert {r.crm_store_id: as_api(r.entry_reason) for r in store_rows} == api
    binding_rows, _ = review.search_bindings(session=session, actor=viewer, filters=review.BindingFilter())
    assert {r.crm_store_id: as_api(r.entry_reason) for r in binding_rows} == {
        crm: reason for crm, reason in api.items() if reason != "no_binding"}
    assert {r.crm_store_id for r in binding_rows if r.visible} == {"000101"}
    figures = overview.overview(session=session, actor=viewer)
    assert figures.visible_entries == 1


def test_export_entries_matches_the_api_for_every_store(api, session, org, tmp_path, capsys):
    bind(session, "000101", "visible1", shown=True)
    bind(session, "000102", "hidden1")
    bind(session, "000201", "full1", shown=True, count=9000)
    out = tmp_path / "out" / "entries.json"
    assert cli_main(["export-entries", "--out", str(out)]) == 0
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert [e["crm_store_id"] for e in exported] == ["000101", "000102", "000103", "000201", "000202", "101"]
    for item in exported:
        assert api(item["crm_store_id"]) == item
    assert cli_main(["export-entries"]) == 0
    assert json.loads(capsys.readouterr().out) == exported


def test_overview_needs_action_follows_the_entry_rule(session, org, make_user):
    operator = make_user(Role.hq_operator)
    bind(session, "000101", "off1", shown=True, status="disabled")
    bind(session, "000102", "full1", count=5000)
    bind(session, "000103", "closed1", status="disabled")          # closed store: not an account problem
    bind(session, "000201", "fine1", shown=True)
    bind(session, "000202", "spare1", shown=True, status="standby")
    found = overview.needs_action(session=session, actor=operator.actor)
    assert [(n.crm_store_id, n.reason) for n in found.items] == [
        ("000101", "account_disabled"), ("000102", "account_full"), ("000202", "account_standby")]
    assert (found.total, found.cut) == (3, False)
    for item in found.items:
        # The console names a standby account apart; the API's reason set is fixed.
        expected = "account_disabled" if item.reason == "account_standby" else item.reason
        assert entry(session, item.crm_store_id).reason == expected
    first = overview.needs_action(session=session, actor=operator.actor, limit=2)
    assert [n.crm_store_id for n in first.items] == ["000101", "000102"] and (first.total, first.cut) == (3, True)


@pytest.mark.postgres
def test_entries_match_on_postgresql(pg_org):
    """The rule is SQL: run it on PostgreSQL too, including the bulk compare-and-set."""
    engine = pg_org.engine
    with Session(engine, expire_on_commit=False) as session:
        a = bind(session, "000101", "pg_a")
        b = bind(session, "101", "pg_b", count=5000)
        bind(session, "000103", "pg_c")                            # store 000103 is closed
        operator = system_actor("pg-test")
        with pytest.raises(review.BulkRefused):
            review.set_shown(session=session, actor=operator, versions=versions(a, b), shown=True)
        session.rollback()
        review.set_shown(session=session, actor=operator, versions=versions(a), shown=True)
        session.commit()
        got = {e.crm_store_id: e.reason for e in entries.all_entries(session=session, actor=API)}
        assert got == {"000101": None, "101": "account_full", "000103": "store_closed", "000102": "no_binding",
                       "000201": "no_binding", "000202": "no_binding"}
        with engine.connect() as connection:      # the client API's lookup, straight to the driver
            assert {crm: entries.entry_for_store(session=connection, actor=API, crm_store_id=crm).reason
                    for crm in got} == got
            assert entries.entry_for_store(session=connection, actor=API, crm_store_id="0101") is None
        with pytest.raises(review.BulkRefused):
            review.set_shown(session=session, actor=operator, versions={a.id: 1}, shown=False)

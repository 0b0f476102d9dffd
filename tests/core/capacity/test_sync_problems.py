"""A sync failure is stored as the operator reason's key with WeCom's errcode and
errmsg, never as rendered words; the pages put it into Chinese."""

import json

import pytest
from sqlmodel import select

from base.problems import Problem
from core.capacity.sync import sync_counts
from db.models import Account
from demo.simulator import Fault
from i18n import error_text
from tests.support.capacity import bind_accounts, client_for, start_simulator


@pytest.fixture
def sim():
    simulator = start_simulator()
    simulator.set_customers({"store000101": 10, "store000102": 20})
    yield simulator
    simulator.stop()


def test_an_unlisted_errcode_is_stored_as_key_and_params(engine, session, org, sim):
    bind_accounts(session, [("000101", "store000101", 0, 5000), ("000102", "store000102", 0, 5000)])
    sim.inject("externalcontact/list", Fault(errcode=60001))
    with client_for(sim) as client:
        assert sync_counts(engine=engine, client=client, concurrency=1).failed == 1
    stored = [a.sync_error for a in session.exec(select(Account)).all() if a.sync_error]
    assert [json.loads(s) for s in stored] == [{"key": "wecom.reason.other",
                                               "params": {"errcode": 60001, "errmsg": "simulated error 60001"}}]
    assert error_text(Problem.decode(stored[0])) == "企业微信返回错误 60001：simulated error 60001"


def test_a_member_outside_the_follow_list_is_stored_as_its_reason_key(engine, session, org, sim):
    bind_accounts(session, [("000101", "store000101", 0, 5000), ("000102", "store000102", 0, 5000)])
    del sim.customers["store000102"]
    with client_for(sim) as client:
        sync_counts(engine=engine, client=client)
    account = session.exec(select(Account).where(Account.userid == "store000102")).one()
    assert Problem.decode(account.sync_error).key == "wecom.reason.not_in_follow_list"

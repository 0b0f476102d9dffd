"""Issue 12: a `delete_user` callback refreshes the departed member's customers
awaiting transfer (the accounts page's list) through the sidecar at once, while
the callback itself answers within a second without calling WeCom."""

import time

import pytest
from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from base.config import get_settings
from console.web import wecom_callback
from core.auth.permissions import system_actor
from core.directory.members import UNASSIGNED_JOB, departed_members
from core.scheduling.jobs import JobContext, load_jobs, pending_request_ids, run_job
from core.wecom.callback_crypto import CallbackCrypto
from core.wecom.client import forget_tokens
from db.models import JobRequest, UnassignedCustomer
from tests.support.capacity import bind_accounts, start_simulator

pytestmark = pytest.mark.usefixtures("settled_heap")  # they time answers

TOKEN, CORP = "QDG6eK", "wwsimulator"
KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CRYPTO = CallbackCrypto(TOKEN, KEY, CORP)
HQ = system_actor("test")


@pytest.fixture
def sim():
    simulator = start_simulator()
    simulator.set_members({"kf_bj": {"name": "北京客服"}})
    simulator.set_customers({"kf_bj": 3})
    yield simulator
    simulator.stop()


@pytest.fixture
def client(db_url, monkeypatch, sim):
    for key, value in {"WECOM_CALLBACK_TOKEN": TOKEN, "WECOM_CALLBACK_AES_KEY": KEY, "WECOM_CORP_ID": CORP,
                       "WECOM_API_BASE": sim.base_url, "WECOM_SECRET": sim.secret}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    forget_tokens()
    with TestClient(Starlette(routes=wecom_callback.ROUTES)) as test_client:
        yield test_client


def deliver(client, userid: str, change_type: str = "delete_user", status: int | None = None):
    inner = (f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
             f"<CreateTime>1763900000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
             f"<Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[{change_type}]]></ChangeType>"
             f"<UserID><![CDATA[{userid}]]></UserID>"
             + (f"<Status>{status}</Status>" if status is not None else "") + "</xml>").encode()
    encrypted = CRYPTO.encrypt(inner)
    timestamp, nonce = "1763900000", "4242"
    body = f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    return client.post("/wecom/callback", content=body, params={
        "msg_signature": CRYPTO.signature(timestamp, nonce, encrypted), "timestamp": timestamp, "nonce": nonce})


def test_a_member_leaving_refreshes_the_customers_awaiting_transfer_at_once(client, engine, session, org, sim):
    assert sim.corp_id == CORP
    bind_accounts(session, [("000101", "kf_bj", 800, 5000)])
    sim._change_status("kf_bj", 5)   # WeCom: the member left, 3 customers await transfer
    calls_before = sum(sim.calls.values())

    started = time.monotonic()
    answer = deliver(client, "kf_bj")
    assert answer.status_code == 200 and answer.text == ""
    assert time.monotonic() - started < 1.0
    assert sum(sim.calls.values()) == calls_before        # the callback asked WeCom nothing
    assert pending_request_ids(session=session) == [UNASSIGNED_JOB]
    assert deliver(client, "kf_bj").status_code == 200    # WeCom's retry: still one request
    assert pending_request_ids(session=session) == [UNASSIGNED_JOB]
    assert departed_members(session=session, actor=HQ) == []

    # The sidecar runs the requested job within seconds: the accounts page's list is current.
    spec = {s.id: s for s in load_jobs()}[UNASSIGNED_JOB]
    assert spec.requestable
    assert run_job(spec, JobContext(engine=engine, holder="test"))
    session.expire_all()
    [member] = departed_members(session=session, actor=HQ)
    assert (member.userid, member.crm_store_id, member.customers) == ("kf_bj", "000101", 3)
    assert len(session.exec(select(UnassignedCustomer)).all()) == 3


def test_a_disabled_member_or_another_update_queues_nothing(client, session, org, sim):
    bind_accounts(session, [("000101", "kf_bj", 800, 5000)])
    assert deliver(client, "kf_bj", "update_user", status=1).status_code == 200
    assert deliver(client, "kf_bj", "update_user", status=2).status_code == 200
    assert session.exec(select(JobRequest)).all() == []
    # a member the console has no account for may still leave customers behind
    assert deliver(client, "someone.else", "update_user", status=5).status_code == 200
    assert pending_request_ids(session=session) == [UNASSIGNED_JOB]

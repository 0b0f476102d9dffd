"""Adds through a store's code are attributed to that store by the code's state:
a customer scans the code in the simulator, WeCom's signed `add_external_contact`
callback reaches the console over HTTP, and the funnel counts the add for the
store the code belongs to, even when the member's account now serves another
store. State = CRM store ID (codes made elsewhere) keeps working."""

import socket
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from sqlmodel import col, select
from starlette.applications import Starlette

from base.config import get_settings
from base.timeutil import utcnow
from console.web import wecom_callback
from core.auth.permissions import system_actor
from core.codes.sync import sync_codes
from core.funnel.contacts import ADDED, ContactChange, record_contact_change
from db.models import Account, Binding, ContactCode, ContactEvent, FunnelActivity
from tests.support.capacity import client_for, start_simulator
from tests.support.factories import bind, find_store, make_binding

TOKEN, AES_KEY = "codes-callback-token", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


@pytest.fixture
def callback_url(db_url, monkeypatch):
    monkeypatch.setenv("WECOM_CALLBACK_TOKEN", TOKEN)
    monkeypatch.setenv("WECOM_CALLBACK_AES_KEY", AES_KEY)
    monkeypatch.setenv("WECOM_CORP_ID", "wwsimulator")
    get_settings.cache_clear()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=wecom_callback.ROUTES), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/wecom/callback"
    server.should_exit = True
    thread.join(10)
    listener.close()


def test_a_scan_of_a_stores_code_is_attributed_to_that_store_by_state(engine, session, org, callback_url):
    sim = start_simulator(callback_url=callback_url, callback_token=TOKEN, callback_aes_key=AES_KEY)
    try:
        sim.set_customers({"kf01": 10})
        bind(session, "000101", "kf01", code=False)
        with client_for(sim) as client:
            sync_codes(engine=engine, client=client)
        store = find_store(session, "000101")
        code = session.exec(select(ContactCode).where(ContactCode.store_id == store.id)).one()
        # The code's state is not a CRM store ID: only the code can name the store.
        code_state = "store-q1"
        code.state = code_state
        session.add(code)
        session.commit()
        sim.codes.ways[code.config_id].state = code_state
        # The account now serves another store: its binding history would say 000201.
        binding = session.exec(select(Binding).where(Binding.store_id == store.id)).one()
        binding.ended_at, binding.end_reason = utcnow(), "replaced"
        session.add(binding)
        session.commit()
        make_binding(session, find_store(session, "000201"), session.get_one(Account, binding.account_id))

        page = httpx.get(sim.codes.scan_url(code.config_id), timeout=10)
        assert page.status_code == 200 and "回调 200" in page.text
    finally:
        sim.stop()
    session.expire_all()
    event = session.exec(select(ContactEvent)).one()
    assert (event.change_type, event.userid, event.state, event.store_id) == (ADDED, "kf01", code_state, store.id)
    steps = session.exec(select(FunnelActivity.step, FunnelActivity.store_id)
                         .order_by(col(FunnelActivity.step))).all()
    assert sorted(steps) == [("added", store.id), ("added_by_state", store.id)]


def test_a_crm_store_id_as_state_still_names_its_store(session, org):
    bind(session, "000202", "kf02")
    change = ContactChange(corp_id="ww", change_type=ADDED, userid="kf02", external_userid="wmX",
                           create_time=int(datetime(2026, 11, 12, tzinfo=UTC).timestamp()), state="000201")
    event = record_contact_change(session=session, actor=system_actor("test"), change=change)
    assert event.store_id == find_store(session, "000201").id

"""GET /api/v1/stores/{crm_store_id}/entry: API-key auth (hashed, shown once,
revocable), 404, every reason over HTTP. The rule itself, and export-entries
answering exactly as the API: tests/core/bindings/test_entries.py."""

import hashlib
import json
import sqlite3
import time

import pytest
from sqlmodel import Session, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from base.errors import PermissionDenied
from console.cli import main as cli_main
from console.web.entry_api import ROUTES
from core.auth import api_keys
from core.auth.permissions import system_actor
from core.bindings import review
from db.models import ApiKey, Role
from tests.support.factories import bind, find_store

ADMIN = system_actor("test")


@pytest.fixture
def client(db_url):
    with TestClient(Starlette(routes=ROUTES)) as test_client:
        yield test_client


@pytest.fixture
def key(api_key):
    return api_key


def get(client, crm_store_id, key):
    return client.get(f"/api/v1/stores/{crm_store_id}/entry", headers={"X-API-Key": key} if key else {})


def test_without_or_with_a_wrong_key_401(client, org, key):
    for header in (None, "", "swc_not-a-real-key", key + "x", key.upper()):
        response = get(client, "000101", header)
        assert response.status_code == 401, header
        assert response.json()["error"] == "invalid_api_key"
    assert get(client, "000101", key).status_code == 200


def test_unknown_store_404_and_ids_are_text(client, org, key):
    assert get(client, "999999", key).status_code == 404
    assert get(client, "0101", key).status_code == 404
    assert get(client, "101", key).json()["crm_store_id"] == "101"
    assert get(client, "000101", key).json()["crm_store_id"] == "000101"


def test_each_reason_over_http(client, session, org, key):
    bind(session, "000101", "visible1", shown=True)
    bind(session, "000102", "hidden1")
    bind(session, "000103", "closed1", shown=True)
    bind(session, "000201", "off1", shown=True, status="disabled")
    bind(session, "000202", "full1", shown=True, count=5000)
    store_id = find_store(session, "000101").id
    assert get(client, "000101", key).json() == {"crm_store_id": "000101", "visible": True,
                                                 "wecom_userid": "visible1", "wecom_name": "visible1客服",
                                                 "qr_code": f"https://wework.qpic.cn/wwpic/test{store_id}/0",
                                                 "contact_link": None}
    expected = {"000102": "hidden", "000103": "store_closed", "000201": "account_disabled",
                "000202": "account_full", "101": "no_binding"}
    for crm_store_id, reason in expected.items():
        body = get(client, crm_store_id, key).json()
        assert body == {"crm_store_id": crm_store_id, "visible": False, "wecom_userid": None, "wecom_name": None,
                        "qr_code": None, "contact_link": None, "reason": reason}


def test_api_follows_a_show_in_the_console(client, session, org, make_user, key):
    operator = make_user(Role.hq_operator)
    binding = bind(session, "000101", "acc1")
    assert get(client, "000101", key).json()["reason"] == "hidden"
    review.set_shown(session=session, actor=operator.actor, versions={binding.id: binding.version}, shown=True)
    session.commit()
    assert get(client, "000101", key).json()["visible"] is True


def test_keys_are_hashed_shown_once_and_revocable(client, session, org, key):
    row = session.exec(select(ApiKey)).one()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in json.dumps([str(v) for v in row.model_dump().values()])
    assert row.prefix == key[:12]
    assert get(client, "000101", key).status_code == 200
    assert wait_for(lambda: last_used(session.get_bind(), row.id) is not None)   # written in the background
    api_keys.revoke_api_key(session=session, actor=ADMIN, key_id=row.id)
    session.commit()
    assert get(client, "000101", key).status_code == 401
    listed = api_keys.list_api_keys(session=session, actor=ADMIN)
    assert [(k.name, k.revoked_at is not None) for k in listed] == [("App backend", True)]


def test_only_hq_admin_manages_keys(session, org, make_user):
    for role in (Role.hq_operator, Role.branch_manager, Role.viewer):
        user = make_user(role, org["north"] if role == Role.branch_manager else None)
        with pytest.raises(PermissionDenied):
            api_keys.create_api_key(session=session, actor=user.actor, name="x")
        with pytest.raises(PermissionDenied):
            api_keys.list_api_keys(session=session, actor=user.actor)


def test_create_api_key_cli_prints_a_working_key_once(client, org, capsys):
    assert cli_main(["create-api-key", "--name", "CLI key"]) == 0
    plain = capsys.readouterr().out.strip().splitlines()[-1]
    assert plain.startswith(api_keys.KEY_PREFIX)
    assert get(client, "000101", plain).status_code == 200


def last_used(engine, key_id):
    with Session(engine) as check:
        return check.get(ApiKey, key_id).last_used_at


def wait_for(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_entry_answers_at_once_while_another_writer_holds_the_database(client, engine, db_url, org, key):
    """A bulk show or sheet commit holds SQLite's write lock for seconds: the
    entry route (on the web process's event loop) must neither wait for it nor
    fail; the key's last_used_at is written once the lock is free."""
    with engine.connect() as connection:
        key_id = connection.exec_driver_sql("SELECT id FROM apikey").scalar()
    writer = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE store SET name = name || '' WHERE crm_store_id = '000102'")
    try:
        for crm_store_id in ("000101", "000102", "101"):
            started = time.perf_counter()
            response = get(client, crm_store_id, key)
            assert response.status_code == 200
            assert time.perf_counter() - started < 1.0
        assert last_used(engine, key_id) is None
    finally:
        writer.rollback()
        writer.close()
    # The touch given up under the lock is tried again on a later request.
    time.sleep(api_keys.TOUCH_LOCK_WAIT_MS / 1000 + 0.5)
    assert get(client, "000101", key).status_code == 200
    assert wait_for(lambda: last_used(engine, key_id) is not None)


def test_revoked_key_stops_at_once_in_the_revoking_process(client, session, org, key):
    row = session.exec(select(ApiKey)).one()
    assert get(client, "000101", key).status_code == 200            # checked and cached
    api_keys.revoke_api_key(session=session, actor=ADMIN, key_id=row.id)
    # A request while the revocation is not yet committed still sees a live key.
    assert get(client, "000101", key).status_code == 200
    session.commit()
    assert get(client, "000101", key).status_code == 401

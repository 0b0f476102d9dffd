"""The store's code in the entry: the client API, `export-entries` and the
console agree; a hidden entry hands out no account, QR or link; a store without
a code is not visible (`no_code`) unless HQ turned that off; the 获客链接 carries
the code's state as `customer_channel` only while links are on."""

import json

import pytest
from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from console.cli import main as cli_main
from console.web.entry_api import ROUTES
from core import settings_store
from core.auth.permissions import system_actor
from core.bindings import entries, review
from db.models import ContactCode, Role
from tests.support.factories import bind, find_store

API = system_actor("test")


@pytest.fixture
def api(db_url, api_key):
    with TestClient(Starlette(routes=ROUTES)) as client:
        yield lambda crm_store_id: client.get(f"/api/v1/stores/{crm_store_id}/entry",
                                              headers={"X-API-Key": api_key}).json()


def exported(tmp_path) -> dict[str, dict]:
    out = tmp_path / "entries.json"
    assert cli_main(["export-entries", "--out", str(out)]) == 0
    return {item["crm_store_id"]: item for item in json.loads(out.read_text(encoding="utf-8"))}


def code(session, crm_store_id) -> ContactCode:
    session.expire_all()
    return session.exec(select(ContactCode).where(ContactCode.store_id == find_store(session, crm_store_id).id)).one()


def test_a_visible_entry_hands_out_its_code_and_a_hidden_one_nothing(api, session, org, tmp_path):
    bind(session, "000101", "shown1", shown=True)
    bind(session, "000102", "hidden1", shown=False)
    bind(session, "000201", "full1", shown=True, count=5000)
    qr = code(session, "000101").qr_code
    shown = api("000101")
    assert (shown["visible"], shown["qr_code"], shown["contact_link"]) == (True, qr, None)
    for crm, reason in (("000102", "hidden"), ("000201", "account_full")):
        hidden = api(crm)
        assert code(session, crm).qr_code      # the code exists, and still is not handed out
        assert hidden == {"crm_store_id": crm, "visible": False, "wecom_userid": None, "wecom_name": None,
                          "qr_code": None, "contact_link": None, "reason": reason}
    everything = exported(tmp_path)
    assert everything["000101"]["qr_code"] == qr
    for crm in ("000102", "000201"):
        assert everything[crm] == api(crm)
    assert all(item["qr_code"] is None for crm, item in everything.items() if crm != "000101")


def test_a_store_without_its_code_yet_is_not_visible_unless_hq_says_so(api, session, org, make_user, tmp_path):
    hq = make_user(Role.hq_admin).actor
    bind(session, "000101", "new1", shown=True, code=False)
    assert api("000101")["reason"] == "no_code" and api("000101")["wecom_userid"] is None
    assert exported(tmp_path)["000101"]["reason"] == "no_code"
    rows, _ = review.search_bindings(session=session, actor=hq, filters=review.BindingFilter())
    assert [(r.crm_store_id, r.entry_reason) for r in rows] == [("000101", "no_code")]
    # Hidden stays "hidden": the operator's flag is the first thing to act on.
    bind(session, "000102", "new2", shown=False, code=False)
    assert api("000102")["reason"] == "hidden"

    settings_store.save(session=session, actor=hq, key="codes.entry_needs_code", value=False)
    session.commit()
    visible = api("000101")
    assert (visible["visible"], visible["wecom_userid"], visible["qr_code"]) == (True, "new1", None)


def test_the_link_carries_the_codes_state_while_links_are_on(api, session, org, make_user):
    hq = make_user(Role.hq_admin).actor
    bind(session, "000101", "linked1", shown=True)
    row = code(session, "000101")
    row.link_url = "https://work.weixin.qq.com/ca/cawcde123?from=app"
    session.add(row)
    session.commit()
    assert api("000101")["contact_link"] is None          # links are off by default
    settings_store.save(session=session, actor=hq, key="codes.links_enabled", value=True)
    session.commit()
    assert api("000101")["contact_link"] == \
        f"https://work.weixin.qq.com/ca/cawcde123?from=app&customer_channel={row.state}"
    bind(session, "000102", "hidden2", shown=False)
    assert api("000102")["contact_link"] is None
    assert entries.contact_link("https://x.test/ca/a", "s 1/&") == "https://x.test/ca/a?customer_channel=s%201%2F%26"

"""The simulator's WeCom people over real HTTP (issue 12's simulator contract):
`user/get`, the QR login and OAuth2 member picker, single-use login codes,
`message/send` with `invaliduser`, the per-member limits and the duplicate
check, `get_unassigned_list` paging, and `change_contact` callbacks that the
console's callback crypto accepts."""

import re
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from core.wecom.callback_crypto import CallbackCrypto, CallbackCryptoError
from demo.simulator import WeComSimulator
from tests.support.capacity import start_simulator

AGENT_ID = "1000002"
CALLBACK = "http://console.test/login/wecom/callback"
MEMBERS = {
    "bj.manager": {"name": "北京分公司经理"},
    "Store001": {"name": "朝阳万达客服", "customer_contact": True},
    "left.one": {"name": "已离职成员", "status": 5},
    "disabled.one": {"name": "已禁用成员", "status": 2},
}
# One client for the module: a new httpx client per call costs ~0.1 s (its TLS context).
HTTP = httpx.Client(timeout=10)


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture
def sim() -> Iterator[WeComSimulator]:
    simulator = start_simulator(agent_id=AGENT_ID)
    simulator.set_members(MEMBERS)
    yield simulator
    simulator.stop()


def token(sim: WeComSimulator) -> str:
    answer = HTTP.get(f"{sim.base_url}/cgi-bin/gettoken", params={"corpid": sim.corp_id, "corpsecret": sim.secret})
    return answer.json()["access_token"]


def call(sim: WeComSimulator, api: str, *, access_token: str, body: dict | None = None, **params: str) -> dict:
    url = f"{sim.base_url}/cgi-bin/{api}"
    query = {"access_token": access_token, **params}
    response = HTTP.post(url, params=query, json=body) if body is not None else HTTP.get(url, params=query)
    assert response.status_code == 200
    return response.json()


def login_params(sim: WeComSimulator, **override: str) -> dict[str, str]:
    return {"login_type": "CorpApp", "appid": sim.corp_id, "agentid": AGENT_ID, "redirect_uri": CALLBACK,
            "state": "s7Kq2", **override}


def scan_links(page: str) -> dict[str, str]:
    """The picker's links by their text."""
    return {text: href.replace("&amp;", "&") for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', page)}


def scan_as(sim: WeComSimulator, page: str, text: str) -> str:
    """Follows the picker's link `text`; the code in the redirect to the console."""
    answer = HTTP.get(sim.base_url + scan_links(page)[text])
    assert answer.status_code == 302
    location = urlparse(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == ["s7Kq2"]
    return query["code"][0]


def send(sim: WeComSimulator, access_token: str, touser: str, title: str = "容量提醒", **extra) -> dict:
    body = {"touser": touser, "agentid": int(AGENT_ID), "msgtype": "textcard",
            "textcard": {"title": title, "description": "北京朝阳万达店客服容量已达到70%",
                         "url": "http://localhost:8501/capacity", "btntxt": "查看"}, **extra}
    return call(sim, "message/send", access_token=access_token, body=body)


def test_user_get_answers_each_members_status_and_refuses_an_unknown_userid(sim):
    access_token = token(sim)
    assert call(sim, "user/get", access_token=access_token, userid="STORE001") == {
        "errcode": 0, "errmsg": "ok", "userid": "Store001", "name": "朝阳万达客服", "status": 1}
    assert call(sim, "user/get", access_token=access_token, userid="left.one")["status"] == 5
    assert call(sim, "user/get", access_token=access_token, userid="disabled.one")["status"] == 2
    unknown = call(sim, "user/get", access_token=access_token, userid="nobody")
    assert (unknown["errcode"], unknown["errmsg"]) == (60111, "userid not found")

    sim.member_leaves("Store001")
    assert call(sim, "user/get", access_token=access_token, userid="store001")["status"] == 5


def test_user_get_is_rate_limited_like_the_other_apis():
    sim = start_simulator(per_minute=2)
    try:
        sim.set_members(MEMBERS)
        access_token = token(sim)
        codes = [call(sim, "user/get", access_token=access_token, userid="bj.manager")["errcode"] for _ in range(3)]
        assert codes == [0, 0, 45009]
    finally:
        sim.stop()


def test_the_qr_login_page_lists_the_active_members_and_a_scan_returns_a_code_that_works_once(sim):
    page = HTTP.get(f"{sim.base_url}/wwlogin/sso/login", params=login_params(sim))
    assert page.status_code == 200
    assert "<title>企业微信扫码登录（模拟）</title>" in page.text
    assert set(scan_links(page.text)) == {"以 北京分公司经理（bj.manager）扫码确认",
                                          "以 朝阳万达客服（Store001）扫码确认"}

    code = scan_as(sim, page.text, "以 北京分公司经理（bj.manager）扫码确认")
    access_token = token(sim)
    assert call(sim, "auth/getuserinfo", access_token=access_token, code=code) == {
        "errcode": 0, "errmsg": "ok", "userid": "bj.manager"}
    used = call(sim, "auth/getuserinfo", access_token=access_token, code=code)
    assert (used["errcode"], used["errmsg"]) == (40029, "invalid code")
    assert call(sim, "auth/getuserinfo", access_token=access_token, code="made-up")["errcode"] == 40029


def test_a_code_expires():
    expiring = start_simulator(agent_id=AGENT_ID, code_ttl_seconds=0.3)
    try:
        expiring.set_members(MEMBERS)
        page = HTTP.get(f"{expiring.base_url}/wwlogin/sso/login", params=login_params(expiring)).text
        code = scan_as(expiring, page, "以 北京分公司经理（bj.manager）扫码确认")
        time.sleep(0.5)
        assert call(expiring, "auth/getuserinfo", access_token=token(expiring), code=code)["errcode"] == 40029
    finally:
        expiring.stop()


def test_the_login_page_refuses_a_wrong_appid_or_agentid(sim):
    for wrong in ({"appid": "wwother"}, {"agentid": "1000003"}, {"redirect_uri": "javascript:alert(1)"}):
        page = HTTP.get(f"{sim.base_url}/wwlogin/sso/login", params=login_params(sim, **wrong))
        assert page.status_code == 400
        assert "企业微信登录出错" in page.text
        assert not scan_links(page.text)
    without_agent = {key: value for key, value in login_params(sim).items() if key != "agentid"}
    assert HTTP.get(f"{sim.base_url}/wwlogin/sso/login", params=without_agent).status_code == 400
    # A forged scan link gets no code either.
    forged = HTTP.get(f"{sim.base_url}/_simulator/scan", params={**login_params(sim, appid="wwother"),
                                                                 "userid": "bj.manager"})
    assert forged.status_code == 400
    stranger = HTTP.get(f"{sim.base_url}/_simulator/scan", params={**login_params(sim), "userid": "nobody"})
    assert stranger.status_code == 400


def test_oauth2_inside_wecom_shows_the_same_picker_and_redirects_the_same_way(sim):
    params = {"appid": sim.corp_id, "redirect_uri": CALLBACK, "response_type": "code", "scope": "snsapi_base",
              "state": "s7Kq2", "agentid": AGENT_ID}
    page = HTTP.get(f"{sim.base_url}/connect/oauth2/authorize", params=params)
    assert page.status_code == 200
    code = scan_as(sim, page.text, "以 朝阳万达客服（Store001）扫码确认")
    assert call(sim, "auth/getuserinfo", access_token=token(sim), code=code)["userid"] == "Store001"
    assert HTTP.get(f"{sim.base_url}/connect/oauth2/authorize",
                     params={**params, "appid": "wwother"}).status_code == 400


def test_a_member_who_left_after_the_page_was_shown_still_gets_a_code_and_user_get_says_so(sim):
    page = HTTP.get(f"{sim.base_url}/wwlogin/sso/login", params=login_params(sim)).text
    sim.member_leaves("bj.manager")
    code = scan_as(sim, page, "以 北京分公司经理（bj.manager）扫码确认")
    access_token = token(sim)
    userid = call(sim, "auth/getuserinfo", access_token=access_token, code=code)["userid"]
    assert call(sim, "user/get", access_token=access_token, userid=userid)["status"] == 5
    again = HTTP.get(f"{sim.base_url}/wwlogin/sso/login", params=login_params(sim)).text
    assert "bj.manager" not in again


def test_an_app_message_reaches_active_members_and_names_the_invalid_ones(sim):
    answer = send(sim, token(sim), "bj.manager|STORE001|left.one|disabled.one|nobody")
    assert answer["errcode"] == 0
    assert answer["msgid"]
    assert answer["invaliduser"].split("|") == ["left.one", "disabled.one", "nobody"]
    inbox = HTTP.get(f"{sim.base_url}/_simulator/app_inbox").json()
    assert [(m["userid"], m["title"], m["url"], m["btntxt"]) for m in inbox] == [
        ("bj.manager", "容量提醒", "http://localhost:8501/capacity", "查看"),
        ("Store001", "容量提醒", "http://localhost:8501/capacity", "查看")]
    assert inbox[0]["description"] == "北京朝阳万达店客服容量已达到70%"
    assert [m.userid for m in sim.app_messages()] == ["bj.manager", "Store001"]

    wrong_agent = call(sim, "message/send", access_token=token(sim),
                       body={"touser": "bj.manager", "agentid": 1, "msgtype": "textcard",
                             "textcard": {"title": "t", "description": "d", "url": "http://x"}})
    assert wrong_agent["errcode"] == 40056
    assert len(sim.app_messages()) == 2


def test_a_member_gets_at_most_30_app_messages_a_minute_the_rest_dropped_silently(sim):
    access_token = token(sim)
    answers = [send(sim, access_token, "bj.manager|Store001" if n < 5 else "bj.manager", title=f"提醒{n}")
               for n in range(35)]
    assert {a["errcode"] for a in answers} == {0}
    assert {a["invaliduser"] for a in answers} == {""}
    received = [m.title for m in sim.app_messages() if m.userid == "bj.manager"]
    assert received == [f"提醒{n}" for n in range(30)]
    assert len([m for m in sim.app_messages() if m.userid == "Store001"]) == 5


def test_a_member_gets_at_most_1000_app_messages_an_hour():
    sim = start_simulator(agent_id=AGENT_ID, member_per_minute=10_000)
    try:
        sim.set_members(MEMBERS)
        access_token = token(sim)
        for n in range(1003):
            body = {"touser": "bj.manager", "agentid": AGENT_ID, "msgtype": "text", "text": {"content": f"#{n}"}}
            assert HTTP.post(f"{sim.base_url}/cgi-bin/message/send", params={"access_token": access_token},
                             json=body).json()["errcode"] == 0
        assert len(sim.app_messages()) == 1000
    finally:
        sim.stop()


def test_the_duplicate_check_skips_the_same_content_to_the_same_member_within_the_interval(sim):
    access_token = token(sim)
    check = {"enable_duplicate_check": 1, "duplicate_check_interval": 1}
    send(sim, access_token, "bj.manager", **check)
    send(sim, access_token, "bj.manager|Store001", **check)
    send(sim, access_token, "bj.manager", title="另一条", **check)
    assert [(m.userid, m.title) for m in sim.app_messages()] == [
        ("bj.manager", "容量提醒"), ("Store001", "容量提醒"), ("bj.manager", "另一条")]
    time.sleep(1.1)
    send(sim, access_token, "bj.manager", **check)
    send(sim, access_token, "bj.manager")   # without the check, a repeat is delivered
    assert [m.title for m in sim.app_messages() if m.userid == "bj.manager"] == ["容量提醒", "另一条", "容量提醒",
                                                                                    "容量提醒"]


def test_a_departed_members_customers_are_listed_for_transfer_page_by_page(sim):
    sim.set_customers({"Store001": 5, "bj.manager": 2})
    access_token = token(sim)
    customers = call(sim, "externalcontact/list", access_token=access_token, userid="Store001")["external_userid"]
    assert call(sim, "externalcontact/get_unassigned_list", access_token=access_token,
                body={"cursor": "", "page_size": 2}) == {"errcode": 0, "errmsg": "ok", "info": [], "is_last": True,
                                                         "next_cursor": ""}
    before = time.time()
    sim.member_leaves("Store001")

    pages, cursor = [], ""
    while True:
        page = call(sim, "externalcontact/get_unassigned_list", access_token=access_token,
                    body={"cursor": cursor, "page_size": 2})
        assert page["errcode"] == 0
        pages.append(page["info"])
        if page["is_last"]:
            assert page["next_cursor"] == ""
            break
        cursor = page["next_cursor"]
    assert [len(info) for info in pages] == [2, 2, 1]
    listed = [entry for info in pages for entry in info]
    assert [entry["external_userid"] for entry in listed] == customers
    assert {entry["handover_userid"] for entry in listed} == {"Store001"}
    assert all(before - 1 <= entry["dimission_time"] <= time.time() for entry in listed)
    # The member is off the follow list; the colleague still on it.
    assert call(sim, "externalcontact/get_follow_user_list", access_token=access_token)["follow_user"] == ["bj.manager"]
    assert call(sim, "externalcontact/list", access_token=access_token, userid="Store001")["errcode"] == 84061


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        query = {key: values[0] for key, values in parse_qs(urlparse(self.path).query).items()}
        self.received.append((query, self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def console_callback() -> Iterator[tuple[str, list]]:
    """A stand-in for the console's /wecom/callback that records what it is sent."""
    received: list[tuple[dict[str, str], bytes]] = []

    class Recorder(_Recorder):
        pass

    Recorder.received = received
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/wecom/callback", received
    server.shutdown()
    server.server_close()


def test_member_changes_are_posted_as_signed_encrypted_change_contact_callbacks(console_callback):
    url, received = console_callback
    aes_key = "c3RvcmUtd2Vjb20tY29uc29sZS1kZW1vLWFlcy1rZXk"
    sim = start_simulator(agent_id=AGENT_ID, callback_url=url, callback_token="cb-token", callback_aes_key=aes_key)
    try:
        sim.set_members(MEMBERS)
        assert sim.member_leaves("Store001") == 200
        assert sim.member_updates("bj.manager", 2) == 200
    finally:
        sim.stop()
    crypto = CallbackCrypto("cb-token", aes_key, sim.corp_id)
    events = []
    for query, body in received:
        envelope = {child.tag: child.text for child in ElementTree.fromstring(body)}
        assert envelope["ToUserName"] == sim.corp_id
        crypto.verify(query["msg_signature"], query["timestamp"], query["nonce"], envelope["Encrypt"])
        events.append({child.tag: child.text for child in ElementTree.fromstring(crypto.decrypt(envelope["Encrypt"]))})
    assert [(e["Event"], e["ChangeType"], e["UserID"], e.get("Status")) for e in events] == [
        ("change_contact", "delete_user", "Store001", None), ("change_contact", "update_user", "bj.manager", "2")]
    assert all(e["ToUserName"] == sim.corp_id and e["MsgType"] == "event" and e["CreateTime"].isdigit()
               for e in events)
    # A forged signature is what the console's check refuses.
    query, body = received[0]
    encrypted = ElementTree.fromstring(body).findtext("Encrypt") or ""
    with pytest.raises(CallbackCryptoError) as refused:
        CallbackCrypto("other-token", aes_key, sim.corp_id).verify(query["msg_signature"], query["timestamp"],
                                                                   query["nonce"], encrypted)
    assert refused.value.key == "callback.bad_signature"


def test_without_a_callback_url_a_member_change_posts_nothing(sim):
    assert sim.member_leaves("Store001") is None

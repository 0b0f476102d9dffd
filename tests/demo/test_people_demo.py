"""The demo's WeCom people as `scripts/run.sh` runs them: seed-demo links
bj_manager to a member and sends the BJ branch's alerts to its managers as app
messages; `simulator --from-database` knows every account and linked user as an
active member, lets bj_manager "scan", and with `--leave-after` one BJ store's
member leaves, posted to the console's callback."""

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlmodel import select

from base.config import PROJECT_ROOT as ROOT
from base.config import get_settings
from core.wecom.callback_crypto import CallbackCrypto
from db.models import AlertChannel, Branch, ChannelKind, User
from demo import people
from demo import seed as demo

TOKEN, AES_KEY = "demo-callback-token", "c3RvcmUtd2Vjb20tY29uc29sZS1kZW1vLWFlcy1rZXk"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def seeded(db_url, session, monkeypatch):
    # As under scripts/run.sh: the demo talks to the simulator.
    monkeypatch.setenv("WECOM_API_BASE", "http://127.0.0.1:8502")
    get_settings.cache_clear()
    monkeypatch.setattr(demo, "DEMO_EXTENSIONS", ["demo.capacity:seed_capacity", "demo.people:seed_people"])
    created = demo.seed_demo(session=session)
    session.commit()
    return created


def test_the_demo_links_bj_manager_and_sends_bj_alerts_to_its_managers_as_app_messages(seeded, session):
    assert [(u.username, u.wecom_userid) for u in seeded if u.wecom_userid] == [("bj_manager", demo.BJ_MANAGER_MEMBER)]
    manager = session.exec(select(User).where(User.username == "bj_manager")).one()
    assert manager.wecom_userid == "bj.manager"
    channel = session.exec(select(AlertChannel).where(AlertChannel.kind == ChannelKind.wecom_app)).one()
    assert channel.branch_id == manager.branch_id
    assert session.get(Branch, channel.branch_id).code == "BJ01"
    assert channel.to_branch_managers and channel.enabled

    members = people.members_from_database(session=session)
    assert members["bj.manager"] == {"name": "北京分公司经理"}
    leaver = people.leaving_member(session=session, keep=set())
    assert leaver is not None
    # Deterministic, and never one of the accounts kept out (the growing ones).
    assert people.leaving_member(session=session, keep=set()) == leaver
    other = people.leaving_member(session=session, keep={leaver[0]})
    assert other is not None and other[0] != leaver[0]
    assert leaver[1].startswith("北京")


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        query = {key: values[0] for key, values in parse_qs(urlparse(self.path).query).items()}
        self.received.append((query, self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def callback_server() -> Iterator[tuple[str, list]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Recorder", (_Recorder,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/wecom/callback", received
    server.shutdown()
    server.server_close()


def test_the_demo_simulator_serves_the_members_and_one_bj_member_leaves(seeded, db_url, tmp_path, callback_server):
    url, received = callback_server
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": db_url, "WECOM_API_BASE": base, "WECOM_CORP_ID": "wwdemo0000000001",
           "WECOM_SECRET": "demo-simulator-secret", "WECOM_AGENT_ID": "1000002",
           "WECOM_CALLBACK_TOKEN": TOKEN, "WECOM_CALLBACK_AES_KEY": AES_KEY}
    log_path = tmp_path / "simulator.log"
    simulator = subprocess.Popen([sys.executable, "-m", "console", "simulator", "--port", str(port),
                                  "--from-database", "--grow", "1", "--callback-url", url, "--leave-after", "1"],
                                 cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not received and time.monotonic() < deadline:
            time.sleep(0.2)
        log = log_path.read_text()
        leaver = re.search(r"demo: member (\S+) \((\S+)\) leaves the company", log)
        assert leaver, log
        grown = re.findall(r"demo growth: (\S+)", log)
        assert grown and leaver.group(1) not in grown
        assert leaver.group(2).startswith("北京")

        page = httpx.get(f"{base}/wwlogin/sso/login", params={
            "login_type": "CorpApp", "appid": "wwdemo0000000001", "agentid": "1000002",
            "redirect_uri": "http://localhost:8501/login/wecom/callback", "state": "x1"}, timeout=5)
        assert "以 北京分公司经理（bj.manager）扫码确认" in page.text
        assert leaver.group(1) not in page.text
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
    assert len(received) == 1, log_path.read_text()
    query, body = received[0]
    crypto = CallbackCrypto(TOKEN, AES_KEY, "wwdemo0000000001")
    encrypted = re.search(rb"<Encrypt><!\[CDATA\[(.+?)\]\]></Encrypt>", body).group(1).decode()
    crypto.verify(query["msg_signature"], query["timestamp"], query["nonce"], encrypted)
    message = crypto.decrypt(encrypted).decode()
    assert "<ChangeType><![CDATA[delete_user]]></ChangeType>" in message
    assert f"<UserID><![CDATA[{leaver.group(1)}]]></UserID>" in message


def test_demo_growth_starts_with_an_account_whose_branch_managers_get_app_messages():
    from console.cli.capacity import growth_plan

    accounts = [("a", 3400, 5000), ("b", 3600, 5000), ("c", 3100, 5000), ("bj1", 3000, 5000), ("bj2", 2000, 5000)]
    plan = growth_plan(accounts, 70, 2, first={"bj1", "bj2"})
    # The closest BJ account crosses first, then the closest of the rest.
    assert list(plan) == ["bj1", "a"]
    assert plan["bj1"] == pytest.approx(500 / 1) and plan["a"] == pytest.approx(100 / 2.5)

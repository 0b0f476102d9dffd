"""The demo's store codes as `scripts/run.sh` runs them: `simulator
--from-database` serves the codes the console made with an earlier simulator
(QR image and all), and with `--scans-per-minute` simulated customers scan them,
each scan a signed `add_external_contact` callback carrying the code's State."""

import io
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import httpx
import pytest
import zxingcpp
from PIL import Image
from sqlmodel import select

from base.config import PROJECT_ROOT as ROOT
from core.wecom.callback_crypto import CallbackCrypto
from db.models import ContactCode
from tests.demo.test_people_demo import AES_KEY, TOKEN, _Recorder, free_port
from tests.support.factories import bind, find_store


@pytest.fixture
def recorded() -> Iterator[tuple[str, list]]:
    """A stand-in for the console's callback that keeps what it receives."""
    received: list[tuple[dict[str, str], bytes]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Recorder", (_Recorder,), {"received": received}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/wecom/callback", received
    server.shutdown()
    server.server_close()


def test_the_demo_simulator_keeps_the_codes_and_customers_scan_them(db_url, session, org, recorded, tmp_path):
    url, received = recorded
    bind(session, "000101", "kf101")
    code = session.exec(select(ContactCode).where(ContactCode.store_id == find_store(session, "000101").id)).one()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": db_url, "WECOM_CORP_ID": "wwdemo0000000001", "WECOM_SECRET": "demo-simulator-secret",
           "WECOM_CALLBACK_TOKEN": TOKEN, "WECOM_CALLBACK_AES_KEY": AES_KEY}
    log_path = tmp_path / "simulator.log"
    simulator = subprocess.Popen([sys.executable, "-m", "console", "simulator", "--port", str(port),
                                  "--from-database", "--callback-url", url, "--scans-per-minute", "120"],
                                 cwd=ROOT, env={**os.environ, **env}, stdout=log_path.open("wb"),
                                 stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not received and time.monotonic() < deadline:
            time.sleep(0.2)
        image = httpx.get(f"{base}/_simulator/qr/{code.config_id}.png", timeout=5)
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
    assert received, log_path.read_text()
    [barcode] = zxingcpp.read_barcodes(Image.open(io.BytesIO(image.content)))
    assert barcode.text == f"{base}/_simulator/contact/{code.config_id}"
    query, body = received[0]
    crypto = CallbackCrypto(TOKEN, AES_KEY, "wwdemo0000000001")
    encrypted = re.search(rb"<Encrypt><!\[CDATA\[(.+?)\]\]></Encrypt>", body).group(1).decode()
    crypto.verify(query["msg_signature"], query["timestamp"], query["nonce"], encrypted)
    message = crypto.decrypt(encrypted).decode()
    assert "<ChangeType><![CDATA[add_external_contact]]></ChangeType>" in message
    assert f"<State><![CDATA[{code.state}]]></State>" in message
    assert "<UserID><![CDATA[kf101]]></UserID>" in message

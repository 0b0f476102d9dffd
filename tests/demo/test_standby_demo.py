"""The demo's automatic switch as `scripts/run.sh` runs it: seed-demo reserves
standby accounts, the simulator grows one Shanghai store's account past the
switch level (`--switch-after`), and the sidecar moves the store to its standby
and tells the robots once, in the issue's wording."""

import os
import re
import subprocess
import sys
import time

import httpx
from sqlmodel import Session, col, select

from base.config import PROJECT_ROOT as ROOT
from db.engine import get_engine
from db.models import Account, Binding, StandbyAccount
from tests.demo.test_capacity_demo import free_port


def test_one_demo_store_switches_to_its_standby_within_minutes(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {**os.environ, "DATABASE_URL": url, "WECOM_API_BASE": base, "WECOM_CORP_ID": "wwdemo0000000001",
           "WECOM_SECRET": "demo-simulator-secret", "ALERT_ALLOWED_HOSTS": "127.0.0.1"}

    def console(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "console", *args], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)

    console("migrate")
    console("seed-demo", "--credentials-file", str(tmp_path / "logins.txt"))
    with Session(get_engine(url)) as session:
        assert len(session.exec(select(StandbyAccount)).all()) >= 5
    log_path = tmp_path / "simulator.log"
    simulator = subprocess.Popen([sys.executable, "-m", "console", "simulator", "--port", str(port),
                                  "--from-database", "--switch-after", "150", "--grow-speed", "60"],
                                 cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "WeCom simulator on" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        [switching] = re.findall(r"demo: (\S+) reaches the switch level", log_path.read_text())
        texts: list[str] = []
        for _attempt in range(10):
            time.sleep(1.5)
            once = subprocess.run([sys.executable, "scheduler.py", "--once"], cwd=ROOT, env=env, timeout=120,
                                  capture_output=True, text=True)
            assert once.returncode == 0, once.stdout + once.stderr
            texts = [m["text"] for m in httpx.get(f"{base}/_simulator/inbox", timeout=5).json()]
            if any(f"(账号:{switching}) →" in text for text in texts):
                break
        # The seed's other full accounts switch or lack a standby too; a robot may combine
        # several alerts in one message, so the store's own lines are counted.
        switched = [line for text in texts for line in text.splitlines() if f"(账号:{switching}) →" in line]
        assert switched, texts
        wording = (rf"(\d+\. )?.+已自动换号：.+\(账号:{switching}\) → .+\(账号:standby\d\d\)，"
                   r"原账号客户容量已达(9[5-9]|100)%，二维码不变。")
        assert all(re.fullmatch(wording, line) for line in switched), switched
        # One message per group that takes the store's alerts (HQ and the Shanghai group), not one per run.
        assert len(switched) == 2
        with Session(get_engine(url)) as session:
            store_id, = session.exec(select(Binding.store_id).join(Account, col(Account.id) == Binding.account_id)
                                     .where(Account.userid == switching)).all()
            current = session.exec(select(Account).join(Binding, col(Binding.account_id) == Account.id).where(
                Binding.store_id == store_id, col(Binding.ended_at).is_(None))).one()
            assert current.userid.startswith("standby") and current.status == "active"
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)

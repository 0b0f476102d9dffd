"""The demo as `scripts/run.sh` runs it: seed-demo, the simulator serving the
database's accounts with growth (`simulator --from-database --grow`), and the
sidecar: a growing account crosses 70 % and the HQ robot gets exactly one
message per crossing, in the seed's wording; growth stops at the limit."""

import os
import re
import socket
import subprocess
import sys
import time

import httpx

from base.config import PROJECT_ROOT as ROOT
from demo.simulator import WeComSimulator


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_demo_growth_makes_one_hq_robot_message_per_crossing(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}", "WECOM_API_BASE": base,
           "WECOM_CORP_ID": "wwdemo0000000001", "WECOM_SECRET": "demo-simulator-secret"}

    def console(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "console", *args], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)

    console("migrate")
    console("seed-demo", "--credentials-file", str(tmp_path / "logins.txt"))
    log_path = tmp_path / "simulator.log"
    simulator = subprocess.Popen([sys.executable, "-m", "console", "simulator", "--port", str(port),
                                  "--from-database", "--grow", "1", "--grow-speed", "60"],
                                 cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "WeCom simulator on" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        grown = re.findall(r"demo growth: (\S+)", log_path.read_text())
        assert len(grown) == 1, log_path.read_text()
        inbox: list[dict] = []
        for _attempt in range(6):
            time.sleep(1.5)   # a demo minute at 60× speed: the account crosses 70 % within it
            once = subprocess.run([sys.executable, "scheduler.py", "--once"], cwd=ROOT, env=env, timeout=120,
                                  capture_output=True, text=True)
            assert once.returncode == 0, once.stdout + once.stderr
            # The demo's full accounts also raise switch and no-standby alerts; only the
            # growing account's crossing is counted here.
            inbox = [message for message in httpx.get(f"{base}/_simulator/inbox", timeout=5).json()
                     if f"(账号:{grown[0]})" in message["text"]]
            if inbox:
                break
        assert inbox, "no crossing reached the robot"
        # Only the HQ robot: the growing account is in a branch without its own robot.
        assert {message["robot"] for message in inbox} == {"demo-hq"}
        # In the seed's wording, once (alone, or as one item of a combined message).
        crossing = [line for message in inbox for line in message["text"].splitlines()
                    if re.fullmatch(rf"(\d+\. )?.+\(账号:{grown[0]}\)客户容量已达到70%,请及时处理。", line)]
        assert len(crossing) == 1, inbox
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)


def test_demo_growth_stops_at_the_account_limit():
    sim = WeComSimulator().start()
    try:
        sim.set_customers({"store1": 4990})
        sim.set_limits({"store1": 5000})
        sim.grow({"store1": 600.0}, every_seconds=10, speed=100)   # +100 per tick, a tick every 0.1 s
        time.sleep(0.6)
        assert sim.customers["store1"] == 5000
    finally:
        sim.stop()

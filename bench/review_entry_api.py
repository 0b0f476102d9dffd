"""Client entry API under load: requests per second and p95 latency of
GET /api/v1/stores/{id}/entry (X-API-Key, 50,000 stores) beside a bare Starlette
route returning constant JSON, both served by the same server setup (one
uvicorn process, one app holding both routes), driven by wrk on loopback.
Target: entry ≥ 0.5 × the bare route's throughput, p95 < 20 ms.

    .venv/bin/python bench/review_entry_api.py [--stores 50000] [--seconds 15] [--connections 32]

wrk comes from Debian (apt-get install wrk); the script installs it when missing
and it may.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import insert, update  # noqa: E402
from sqlmodel import Session  # noqa: E402

from base.timeutil import utcnow  # noqa: E402
from bench.review_common import build  # noqa: E402
from core import settings_store  # noqa: E402
from core.auth import api_keys  # noqa: E402
from core.auth.permissions import system_actor
from db.engine import get_engine  # noqa: E402
from db.models import Binding, ContactCode  # noqa: E402
from tests.support.postgres import free_port  # noqa: E402

# The app both routes share: the console's entry route and a constant one.
APP_MODULE = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from console.web.entry_api import ROUTES

CONSTANT = {"crm_store_id": "000001", "visible": True, "wecom_userid": "user000001", "wecom_name": "客服000001",
            "qr_code": "https://wework.qpic.cn/wwpic/000001_9f3a2c4e7b1d_1733212800/0",
            "contact_link": "https://work.weixin.qq.com/ca/cawcde9f3a2c4e7b1d?customer_channel=000001"}


async def bare(_request):
    return JSONResponse(CONSTANT)


app = Starlette(routes=[*ROUTES, Route("/bare", bare)])
"""

# Each request asks for a different store; p95 from wrk's latency histogram.
WRK_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local id = string.format("%06d", (counter * 7919) % STORES + 1)
  return wrk.format("GET", string.gsub(wrk.path, "{id}", id), {["X-API-Key"] = KEY})
end
done = function(summary, latency, requests)
  io.write(string.format("P95_US %d\\nP50_US %d\\nERRORS %d\\n", latency:percentile(95), latency:percentile(50),
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout))
end
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or sys.exit("wrk is not installed (apt-get install wrk)")


def run_wrk(wrk: str, url: str, script: Path, seconds: int, connections: int) -> dict:
    out = subprocess.run([wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p95_ms": int(re.search(r"P95_US (\d+)", out).group(1)) / 1000,
            "p50_ms": int(re.search(r"P50_US (\d+)", out).group(1)) / 1000,
            "errors": int(re.search(r"ERRORS (\d+)", out).group(1)) + (int(non_2xx.group(1)) if non_2xx else 0)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", type=int, default=50_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="swc-bench-api-"))
    url = f"sqlite:///{work}/bench.db"
    build(url, args.stores)
    with Session(get_engine(url)) as session:
        # Half the entries shown, so answers vary between visible and each reason.
        session.exec(update(Binding).where(Binding.id % 2 == 0).values(shown=True))
        # Every store but one in 20 has its contact code (the rest answer no_code), half with a 获客链接, links on.
        now = utcnow()
        session.exec(insert(ContactCode), params=[
            {"store_id": i, "state": f"{i:06d}", "config_id": f"cfg{i:06d}",
             "qr_code": f"https://wework.qpic.cn/wwpic/{i:06d}_9f3a2c4e7b1d_1733212800/0", "userid": f"user{i:06d}",
             "link_url": f"https://work.weixin.qq.com/ca/cawcde{i:06d}" if i % 2 else None,
             "version": 1, "created_at": now, "updated_at": now}
            for i in range(1, args.stores + 1) if i % 20])
        settings_store.save(session=session, actor=system_actor("bench"), key="codes.links_enabled", value=True)
        _row, key = api_keys.create_api_key(session=session, actor=system_actor("bench"), name="bench")
        session.commit()
    (work / "bench_app.py").write_text(APP_MODULE)
    script = work / "entry.lua"
    script.write_text(f'STORES = {args.stores}\nKEY = "{key}"\n' + WRK_SCRIPT)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "CONSOLE_SECRET_KEY": "bench",
           "PYTHONPATH": f"{work}{os.pathsep}{ROOT}"}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench_app:app", "--host", "127.0.0.1", "--port",
                               str(port), "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/bare", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        sample = httpx.get(f"{base}/api/v1/stores/000002/entry", headers={"X-API-Key": key}).json()
        assert sample["crm_store_id"] == "000002", sample
        run_wrk(wrk, f"{base}/api/v1/stores/{{id}}/entry", script, 3, args.connections)  # warm-up
        # wrk shares the two cores with the server: alternate the routes and take medians.
        entries_, bares = [], []
        for _ in range(args.rounds):
            entries_.append(run_wrk(wrk, f"{base}/api/v1/stores/{{id}}/entry", script, args.seconds,
                                    args.connections))
            bares.append(run_wrk(wrk, f"{base}/bare", script, args.seconds, args.connections))
        entry = sorted(entries_, key=lambda f: f["rps"])[len(entries_) // 2]
        bare = sorted(bares, key=lambda f: f["rps"])[len(bares) // 2]
    finally:
        server.terminate()
        server.wait(timeout=15)
    print(f"stores: {args.stores}, wrk -t2 -c{args.connections} -d{args.seconds}s, one uvicorn process, SQLite")
    print(f"  median of {args.rounds} alternating rounds")
    for label, figures in (("entry API", entry), ("bare route", bare)):
        print(f"  {label:<26} {figures['rps']:8.0f} req/s   p50 {figures['p50_ms']:6.2f} ms   "
              f"p95 {figures['p95_ms']:6.2f} ms   errors {figures['errors']}")
    ratio = entry["rps"] / bare["rps"]
    print(f"  ratio entry/bare throughput: {ratio:.2f} (target ≥ 0.5); entry p95 {entry['p95_ms']:.2f} ms "
          f"(target < 20 ms)")


if __name__ == "__main__":
    main()

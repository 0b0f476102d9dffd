"""120 concurrent failed logins: how much memory the web process adds.

The /login routes run under uvicorn in a child process (the console's own
Starlette routes, the thread pool Starlette runs them on); 120 clients post a
wrong password at once, each from its own username so that no hold answers early.
Printed: the child's resident memory before and its peak after (VmHWM), with the
argon2 concurrency limit as shipped and, for comparison, with it lifted.

Target: the burst adds < 800 MB (it is ~64 MiB of argon2 memory per hash running).

    .venv/bin/python bench/login_burst.py [--clients 120]
"""

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

SERVER = """
import sys
import uvicorn
from starlette.applications import Starlette
from core.auth import passwords
from console.web.auth_routes import ROUTES
if sys.argv[2] == "unlimited":
    passwords._turns = passwords.threading.BoundedSemaphore(10_000)
uvicorn.run(Starlette(routes=ROUTES), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))


async def burst(url: str, clients: int) -> list[int]:
    async def one(n: int) -> int:
        # A connection each: a kept-alive one may be closed by the server while the burst waits.
        async with httpx.AsyncClient(base_url=url, timeout=300, headers={"Connection": "close"}) as client:
            form = await client.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
            answer = await client.post("/login", data={"username": f"guess{n}", "password": "wrong-password",
                                                        "csrf_token": csrf})
            return answer.status_code

    return await asyncio.gather(*(one(n) for n in range(clients)))


def run(limit: str, clients: int, database_url: str) -> None:
    from tests.support.postgres import free_port

    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "CONSOLE_SECRET_KEY": "bench-secret"}
    child = subprocess.Popen([sys.executable, "-c", SERVER, str(port), limit], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/login", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        before = kib(child.pid, "VmRSS")
        started = time.monotonic()
        codes = asyncio.run(burst(url, clients))
        took = time.monotonic() - started
        peak = kib(child.pid, "VmHWM")
        print(f"{limit}: {clients} failed logins in {took:.1f} s, answers {sorted(set(codes))}; "
              f"RSS before {before / 1024:.0f} MB, peak {peak / 1024:.0f} MB, added {(peak - before) / 1024:.0f} MB")
    finally:
        child.terminate()
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=120)
    args = parser.parse_args()
    from db.migrate import upgrade_to_head

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        upgrade_to_head(url)
        run("limited", args.clients, url)
        run("unlimited", args.clients, url)


if __name__ == "__main__":
    main()

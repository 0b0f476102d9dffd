"""What the benchmarks that talk to WeCom share: a fresh SQLite database at head
(the WeCom credentials in the environment, as the console reads them), and the
WeCom simulator in its own process, as WeCom would be, with a client pacing at
99.5 % of the simulator's limit so that no 60-second window goes over it."""

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORP, SECRET = "wwbench", "bench-secret"


def fresh_database(prefix: str) -> str:
    """A new SQLite database at head in a temporary folder; its URL, also set as DATABASE_URL."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    url = f"sqlite:///{workdir / 'bench.db'}"
    os.environ.update(DATABASE_URL=url, WECOM_CORP_ID=CORP, WECOM_SECRET=SECRET)
    from db.migrate import upgrade_to_head

    upgrade_to_head(url)
    return url


@contextmanager
def simulator_client(*, per_minute: int, concurrency: int) -> Iterator:
    """A WeComClient on the simulator (`python -m console simulator --from-database`, serving the
    accounts of DATABASE_URL) limited to `per_minute` calls per API; the simulator stops on exit."""
    from core.wecom.client import WeComClient
    from tests.support.postgres import free_port

    port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "console", "simulator", "--port", str(port), "--from-database",
         "--per-minute", str(per_minute)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ})
    try:
        assert simulator.stdout is not None
        line = simulator.stdout.readline().decode()
        if "WeCom simulator on" not in line:
            raise RuntimeError(f"simulator did not start: {line}")
        with WeComClient(f"http://127.0.0.1:{port}", CORP, SECRET, per_minute=int(per_minute * 0.995),
                         max_connections=concurrency * 2) as client:
            yield client
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)

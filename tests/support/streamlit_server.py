"""`streamlit run console/server.py` on a loopback port, waited for the way
Streamlit's own e2e tests do (/_stcore/health, then the app connected and idle)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]


class StreamlitServer:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen | None = None
        self.log_path = Path(env.get("SWC_TEST_LOG_DIR", "/tmp")) / f"streamlit-{self.port}.log"

    def start(self, timeout: float = 60) -> str:
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "console/server.py", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{self.url}/_stcore/health", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"streamlit did not become healthy:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def wait_for_app_run(page, timeout: float = 30_000) -> None:
    """As Streamlit's e2e conftest: connected, then the script not running."""
    page.locator("[data-testid='stApp'][data-test-connection-state='CONNECTED']").wait_for(
        timeout=timeout, state="attached")
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(
        timeout=timeout, state="attached")


def tick_first_row(page, until, attempts: int = 4) -> None:
    """Tick the first data row of the page's first grid, then wait for `until` (a locator the tick
    shows). The grid is a canvas: the click lands by position, so wait until the page above it
    stops moving (widgets load lazily and replace their placeholders), and click again if a
    busy machine still moved it under the click."""
    grid = page.locator("[data-testid='stDataFrame']").first
    grid.locator("canvas").first.wait_for()
    for attempt in range(attempts):
        box, settled = grid.bounding_box(), None
        while settled != box:
            page.wait_for_timeout(200)
            settled, box = box, grid.bounding_box()
        # The row-marker column, first data row (under a 35 px header, rows 35 px high).
        page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)
        wait_for_app_run(page)
        try:
            until.wait_for(timeout=10_000)
            return
        except Exception:
            if attempt == attempts - 1:
                raise


def log_in(page, base_url: str, username: str, password: str) -> None:
    """Log in through the /login form as a person would, then wait for the console."""
    page.goto(f"{base_url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/**")
    wait_for_app_run(page)

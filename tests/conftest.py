"""Shared fixtures: a migrated SQLite file per test, a PostgreSQL server for the
session, users of each role, a running console, and Debian's Chromium.

Under CI=true a missing Chromium or PostgreSQL fails the test instead of
skipping it.
"""

import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from base.config import get_settings
from core.auth import sessions
from db.engine import get_engine
from db.migrate import upgrade_to_head
from db.models import Branch, Role
from tests.support import factories
from tests.support.factories import LoggedUser, make_org
from tests.support.postgres import PostgresServer, find_bin_dir

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = "/usr/bin/chromium"


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: a CI run must exercise every test."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


def point_settings_at(monkeypatch: pytest.MonkeyPatch, url: str, **extra: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CONSOLE_SECRET_KEY", "test-secret-key-not-for-production")
    # The tests' robots and webhooks are real servers on loopback.
    monkeypatch.setenv("ALERT_ALLOWED_HOSTS", "127.0.0.1,localhost")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite file that DATABASE_URL points at for this test."""
    url = f"sqlite:///{tmp_path / 'console.db'}"
    upgrade_to_head(url)
    point_settings_at(monkeypatch, url)
    return url


@pytest.fixture
def engine(db_url: str):
    return get_engine(db_url)


@pytest.fixture
def session(engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def settled_heap() -> Iterator[None]:
    """For tests that time answers: what earlier tests left on the heap is moved out of the
    garbage collector's way (gc.freeze), so a collection during the test scans what the
    console itself holds, as in a console process, not a whole test session's leftovers."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable("PostgreSQL server binaries not installed (apt-get install postgresql)")
    server = PostgresServer(bin_dir)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh, migrated PostgreSQL database for this test."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    url = postgres_server.create_database(name)
    upgrade_to_head(url)
    return url


@pytest.fixture
def org(session: Session) -> dict[str, Branch]:
    """Two branches with a few stores each (one closed, IDs with leading zeros): factories.ORG_STORES."""
    return make_org(session)


@dataclass
class PgOrg:
    engine: Engine
    north: Branch
    south: Branch


@pytest.fixture
def pg_org(pg_url: str) -> PgOrg:
    """The `org` fixture's branches and stores on a fresh PostgreSQL database."""
    engine = get_engine(pg_url)
    with Session(engine, expire_on_commit=False) as session:
        return PgOrg(engine, **make_org(session))


@pytest.fixture
def make_user(session: Session):
    """Users named after their role and a counter (hq_operator1, viewer2, …) unless named."""
    counter = {"n": 0}

    def make(role: Role | str, branch: Branch | None = None, *, username: str | None = None, **fields) -> LoggedUser:
        counter["n"] += 1
        return factories.make_user(session, role, branch, username=username or f"{Role(role).value}{counter['n']}",
                                   **fields)

    return make


@pytest.fixture
def login_token(session: Session):
    """A real server-side session for a user, as /login would create it."""

    def make(test_user: LoggedUser) -> str:
        result = sessions.log_in(session=session, username=test_user.user.username, password=test_user.password)
        session.commit()
        assert result.ok, result.error_key
        return result.token

    return make


@pytest.fixture
def as_user(monkeypatch: pytest.MonkeyPatch, login_token):
    """Make AppTest runs see `test_user` logged in. AppTest cannot send cookies,
    so the cookie reader is replaced by one returning a real session token; the
    rest of the path (session lookup, expiry, role) is the production one."""
    import streamlit as st

    st.cache_resource.clear()

    def log_in(test_user: LoggedUser | None) -> None:
        token = login_token(test_user) if test_user else None
        monkeypatch.setattr("console.ui.context.read_session_token", lambda: token)

    return log_in


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        unavailable("Debian chromium not installed (apt-get install chromium fonts-noto-cjk)")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path: str):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture
def console_server(db_url: str, tmp_path: Path):
    """A running console (`streamlit run console/server.py`) on the test's database."""
    from tests.support.streamlit_server import StreamlitServer

    server = StreamlitServer({"DATABASE_URL": db_url, "CONSOLE_SECRET_KEY": os.environ["CONSOLE_SECRET_KEY"],
                              "SWC_TEST_LOG_DIR": str(tmp_path)})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def api_key(session: Session) -> str:
    """A live API key named "App backend", as the App backend would hold it."""
    from core.auth import api_keys
    from core.auth.permissions import system_actor

    _row, plain = api_keys.create_api_key(session=session, actor=system_actor("test"), name="App backend")
    session.commit()
    return plain

"""WeCom as the known-account checks see it: the simulator's members, the console
configured against it, and a WeCom that does not answer."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from base.config import get_settings
from core.directory import known_members
from core.wecom.client import forget_tokens
from demo.simulator import WeComSimulator

# Members as WeCom knows them: one serving customers, one without customer contact, one disabled.
MEMBERS = {
    "known.one": {"name": "客服甲"},
    "known.two": {"name": "客服乙"},
    "no.contact": {"name": "前台丙", "customer_contact": False},
    "gone.one": {"name": "离职丁", "status": 2},
}


def members_simulator() -> WeComSimulator:
    sim = WeComSimulator().start()
    sim.set_members(MEMBERS)
    return sim


def configure_wecom(monkeypatch: pytest.MonkeyPatch, base_url: str, corp_id: str = "wwsimulator",
                    secret: str = "simulator-secret") -> None:
    """The console's WeCom app points at `base_url`; nothing learnt before is kept."""
    monkeypatch.setenv("WECOM_API_BASE", base_url)
    monkeypatch.setenv("WECOM_CORP_ID", corp_id)
    monkeypatch.setenv("WECOM_SECRET", secret)
    get_settings.cache_clear()
    known_members.forget()
    forget_tokens()


@contextmanager
def silent_server() -> Iterator[str]:
    """A server on loopback that accepts connections and never answers: a WeCom that
    cannot be reached in time."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for connection in held:
            connection.close()
        listener.close()

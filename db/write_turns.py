"""Turns at SQLite's one write lock, for writers that must answer at once.

SQLite lets one connection write at a time and keeps no queue: a writer that
finds the lock taken sleeps in its busy handler (up to 100 ms at a time) and
tries again, so long work cut into chunks (the funnel roll-up, import runs)
can take the lock again first, chunk after chunk, on a busy machine where the
sleeper wakes late. Writers that must answer within a second (event intake,
the WeCom callback) announce themselves here from before they wait until they
commit (a shared lock on a file beside the database); chunked work starts its
next chunk only when no such writer is announced, or after waiting
`LONGEST_YIELD_SECONDS`, so that steady intake cannot stop it altogether.
PostgreSQL writers do not wait for each other's tables, so nothing is done there.
"""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import monotonic, sleep

from sqlalchemy.engine import Connection, Engine

LONGEST_YIELD_SECONDS = 2.0
_POLL_SECONDS = 0.005


def _turns_file(bind: Engine | Connection) -> Path | None:
    engine = bind.engine
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        return None
    return Path(f"{engine.url.database}.writers")


@contextmanager
def urgent_writer(engine: Engine) -> Iterator[None]:
    """Announce a writer that must not wait behind chunked work, for the block's duration."""
    path = _turns_file(engine)
    if path is None:
        yield
        return
    # An open file of its own: flock conflicts between open files, so threads of one process count too.
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def yield_to_urgent_writers(bind: Engine | Connection, longest: float = LONGEST_YIELD_SECONDS) -> None:
    """Between two chunks of long work: wait while an urgent writer is announced (at most `longest`)."""
    path = _turns_file(bind)
    if path is None:
        return
    deadline = monotonic() + longest
    with open(path, "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if monotonic() >= deadline:
                    return
                sleep(_POLL_SECONDS)
            else:
                fcntl.flock(handle, fcntl.LOCK_UN)
                return

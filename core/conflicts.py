"""Races between operators that the database settles: a unique index another
transaction filled first, or a lock another writer held too long. They become a
ConcurrentEdit the page shows in Chinese, never a traceback; the caller rolls back.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session

from base.errors import ConcurrentEdit

# PostgreSQL: serialization failure, deadlock, lock not available.
_PG_LOCK_STATES = {"40001", "40P01", "55P03"}
_PG_UNIQUE_VIOLATION = "23505"


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _is_lock_race(exc: OperationalError) -> bool:
    state = _sqlstate(exc)
    if state is not None:
        return state in _PG_LOCK_STATES
    # SQLite: SQLITE_BUSY after the busy timeout ("database is locked").
    return "locked" in str(exc.orig) or "busy" in str(exc.orig)


def _is_unique_race(exc: IntegrityError) -> bool:
    state = _sqlstate(exc)
    if state is not None:
        return state == _PG_UNIQUE_VIOLATION
    return "UNIQUE constraint failed" in str(exc.orig)


@contextmanager
def settled_races(taken_key: str = "conflict.taken_meanwhile", /, **params) -> Iterator[None]:
    """Writes inside raise ConcurrentEdit(`taken_key`, **params) when another
    transaction took a unique row first (two operators binding the same account),
    and ConcurrentEdit("conflict.database_busy") when the database stayed locked.
    Any other database error is a bug and propagates unchanged."""
    try:
        yield
    except IntegrityError as exc:
        if not _is_unique_race(exc):
            raise
        raise ConcurrentEdit(taken_key, **params) from exc
    except OperationalError as exc:
        if not _is_lock_race(exc):
            raise
        raise ConcurrentEdit("conflict.database_busy") from exc


def lock_for_write(session: Session) -> None:
    """On SQLite, take the write lock before reading what a write is checked
    against, so no other writer can commit in between (SQLite's driver starts a
    transaction only at the first write, so earlier reads see no lock at all).
    PostgreSQL callers lock the rows they read instead (SELECT … FOR UPDATE)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        driver = connection.connection.dbapi_connection
        assert driver is not None  # the session holds its connection
        if not driver.in_transaction:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

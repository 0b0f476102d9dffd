"""The engine and sessions. One engine per database URL per process."""

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import lru_cache

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from base.config import get_settings
from db.write_turns import urgent_writer


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be reached; carries a one-line reason."""


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    # The default 2 MB page cache makes index inserts at millions of rows (events,
    # funnel facts) read the disk; 64 MB per connection keeps their upper levels hot.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url`, by default DATABASE_URL; one per URL per process."""
    return _engine_for(url or get_settings().database_url)


@lru_cache(maxsize=16)
def _engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})
        event.listen(engine, "connect", _configure_sqlite)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                               connect_args={"connect_timeout": 5})
    return engine


def check_database(engine: Engine) -> None:
    """Raise DatabaseUnavailable with one readable line when the database is unreachable."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnavailable(f"database {where} unreachable: {reason}") from exc


@contextmanager
def session_scope(engine: Engine | None = None, *, urgent: bool = False) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error. `urgent`: a writer that must
    answer at once (event intake, the WeCom callback) goes before chunked work (db.write_turns)."""
    engine = engine or get_engine()
    with urgent_writer(engine) if urgent else nullcontext(), Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

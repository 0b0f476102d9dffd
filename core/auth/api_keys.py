"""API keys for machines (the App backend). Shown once; only the SHA-256 is kept."""

import hashlib
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from base.errors import InvalidInput, NotFound
from base.timeutil import utcnow
from core import audit
from core.auth.permissions import Actor, Capability, require
from db.models import ApiKey

KEY_PREFIX = "swc_"
# A checked key is trusted for this long per process, so the client API does
# not read the key table on every request; a revoked key stops working within
# this time on every web process (at once on the process that revoked it).
CACHE_SECONDS = 10
# last_used_at is written at most this often per key and process.
TOUCH_SECONDS = 60
# The write waits at most this long for a lock another writer holds, then is
# given up (and tried again on a later request).
TOUCH_LOCK_WAIT_MS = 1000

log = logging.getLogger(__name__)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(*, session: Session, actor: Actor, name: str) -> tuple[ApiKey, str]:
    """Returns the stored row and the plain key, which is never retrievable again."""
    require(actor, Capability.manage_users)
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("api_keys.bad_name")
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=plain[:12], key_hash=_hash(plain), created_by_id=actor.user_id)
    session.add(row)
    session.flush()
    assert row.id is not None  # assigned by the flush
    audit.record(session=session, actor=actor, action="api_key.create", entity_type="api_key",
                 entity_id=row.id, after={"name": name, "prefix": row.prefix})
    return row, plain


def revoke_api_key(*, session: Session, actor: Actor, key_id: int) -> None:
    require(actor, Capability.manage_users)
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound()
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        # Cleared once the revocation is committed: cleared earlier, a request in
        # between would read the still-live key and cache it again.
        event.listen(session, "after_commit", lambda _session: forget_cached(), once=True)
        audit.record(session=session, actor=actor, action="api_key.revoke", entity_type="api_key",
                     entity_id=key_id, before={"name": row.name, "revoked": False},
                     after={"name": row.name, "revoked": True})


def list_api_keys(*, session: Session, actor: Actor) -> list[ApiKey]:
    require(actor, Capability.manage_users)
    return list(session.exec(select(ApiKey).order_by(col(ApiKey.created_at).desc())).all())


def authenticate(*, session: Session, key: str | None) -> ApiKey | None:
    """The live key matching the header value, or None."""
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == _hash(key))).first()
    if row is None or row.revoked_at is not None:
        return None
    return row


@dataclass(frozen=True)
class ApiClient:
    """A machine client authenticated by its API key."""

    key_id: int
    name: str
    prefix: str


_cache: dict[str, tuple[ApiClient, float]] = {}
_touched: dict[str, float] = {}
_lock = threading.Lock()


def forget_cached() -> None:
    with _lock:
        _cache.clear()


def authenticate_client(*, engine: Engine, key: str | None) -> ApiClient | None:
    """The client behind an `X-API-Key` value, or None. Keys checked within
    CACHE_SECONDS are not read again; unknown keys are never cached. Only reads:
    the client API calls this on the event loop, so last_used_at is written by a
    background thread and a locked database never holds up an answer."""
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    digest = _hash(key)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(digest)
    client: ApiClient | None
    if hit is not None and now - hit[1] < CACHE_SECONDS:
        client = hit[0]
    else:
        with Session(engine) as session:
            row = authenticate(session=session, key=key)
            if row is None:
                client = None
            else:
                assert row.id is not None  # a loaded row has its key
                client = ApiClient(row.id, row.name, row.prefix)
        with _lock:
            if client is None:
                _cache.pop(digest, None)
                return None
            _cache[digest] = (client, now)
    with _lock:
        due = now - _touched.get(digest, -TOUCH_SECONDS) >= TOUCH_SECONDS
        if due:
            _touched[digest] = now
    if due:
        _toucher.submit(_touch, engine, client.key_id, digest)
    return client


# One thread: touches are rare (per key, once a minute) and need no parallelism.
_toucher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-key-touch")


def _touch(engine: Engine, key_id: int, digest: str) -> None:
    """Record that the key was used, waiting briefly for the write lock."""
    touch = update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=utcnow())
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # Set per connection, and this one goes back to the pool: restore the engine's wait.
                waited = int(connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one())
                connection.exec_driver_sql(f"PRAGMA busy_timeout={TOUCH_LOCK_WAIT_MS}")
                try:
                    connection.execute(touch)
                    connection.commit()
                finally:
                    connection.exec_driver_sql(f"PRAGMA busy_timeout={waited}")
            else:
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = {TOUCH_LOCK_WAIT_MS}")
                connection.execute(touch)
                connection.commit()
    except SQLAlchemyError as exc:
        log.info("api key %s: last_used_at not written (%s); a later request tries again", key_id, exc)
        with _lock:
            _touched.pop(digest, None)

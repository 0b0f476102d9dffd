"""API keys for machines (the App backend). Shown once; only the SHA-256 is kept."""

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core import audit
from core.errors import InvalidInput, NotFound
from core.permissions import Actor, Capability, require
from core.timeutil import utcnow
from db.models import ApiKey

KEY_PREFIX = "swc_"
# A checked key is trusted for this long per process, so the client API does
# not read the key table on every request; a revoked key stops working within
# this time on every web process (at once on the process that revoked it).
CACHE_SECONDS = 10
# last_used_at is written at most this often per key and process.
TOUCH_SECONDS = 60


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
        forget_cached()
        audit.record(session=session, actor=actor, action="api_key.revoke", entity_type="api_key",
                     entity_id=row.id, before={"name": row.name, "revoked": False},
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
    CACHE_SECONDS are not read again; unknown keys are never cached."""
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    digest = _hash(key)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(digest)
    if hit is not None and now - hit[1] < CACHE_SECONDS:
        client = hit[0]
    else:
        with Session(engine) as session:
            row = authenticate(session=session, key=key)
            client = None if row is None else ApiClient(row.id, row.name, row.prefix)
        with _lock:
            if client is None:
                _cache.pop(digest, None)
                return None
            _cache[digest] = (client, now)
    if now - _touched.get(digest, -TOUCH_SECONDS) >= TOUCH_SECONDS:
        _touched[digest] = now
        with Session(engine) as session:
            session.exec(update(ApiKey).where(col(ApiKey.id) == client.key_id).values(last_used_at=utcnow()))
            session.commit()
    return client

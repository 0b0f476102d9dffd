"""GET /api/v1/stores/{crm_store_id}/entry: what the App backend asks before
showing a store's entry (导流入口), answered by the one entry rule.

On SQLite the lookup is local and takes a few hundredths of a millisecond, less
than handing it to a worker thread, so it runs on the event loop over one
connection the loop keeps (each lookup ends its read transaction, so the next one
sees the latest state). Only reads run there: in WAL mode a reader never waits
for a writer, and the key's last_used_at is written by a background thread, so
another operator's bulk write never stalls the web process. A database across
the network (PostgreSQL) would stall the loop, so those lookups go to a few
worker threads with pooled connections.
"""

import anyio
from sqlalchemy.engine import Connection, Engine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from console.web.api_auth import authenticate_request, unauthorized
from core.auth.api_keys import ApiClient
from core.auth.permissions import Actor
from core.bindings import entries
from db.engine import get_engine
from db.models import Role

# Dozens of threads fighting over the GIL and the pool answer slower than a few in turn.
_LIMITER = anyio.CapacityLimiter(4)
_loop_connections: dict[Engine, Connection] = {}


def api_actor(key: ApiClient) -> Actor:
    """A machine client reads every store's entry, and nothing else here."""
    return Actor(name=f"api:{key.prefix}", role=Role.viewer)


def _answer(request: Request, connection: Connection) -> Response:
    key = authenticate_request(request)
    if key is None:
        return unauthorized()
    crm_store_id = request.path_params["crm_store_id"]
    entry = entries.entry_for_store(session=connection, actor=api_actor(key), crm_store_id=crm_store_id)
    if entry is None:
        return JSONResponse({"error": "unknown_store", "crm_store_id": crm_store_id}, status_code=404)
    return JSONResponse(entry.as_json(), headers={"Cache-Control": "no-store"})


def _answer_pooled(request: Request, engine: Engine) -> Response:
    with engine.connect() as connection:
        return _answer(request, connection)


def _loop_connection(engine: Engine) -> Connection:
    connection = _loop_connections.get(engine)
    if connection is None or connection.closed or connection.invalidated:
        connection = _loop_connections[engine] = engine.connect()
    return connection


async def store_entry(request: Request) -> Response:
    engine = get_engine()
    if engine.dialect.name != "sqlite":
        return await anyio.to_thread.run_sync(_answer_pooled, request, engine, limiter=_LIMITER)
    connection = _loop_connection(engine)
    try:
        return _answer(request, connection)
    finally:
        connection.rollback()


ROUTES = [Route("/api/v1/stores/{crm_store_id}/entry", store_entry, methods=["GET"])]

"""GET /api/v1/stores/{crm_store_id}/entry: what the App backend asks before
showing a store's entry (导流入口), answered by the one entry rule."""

import anyio
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from console.web.api_auth import authenticate_request, unauthorized
from core import entries
from core.permissions import Actor
from db.engine import get_engine
from core.auth.api_keys import ApiClient
from db.models import Role


# A few worker threads serve the lookups: each is short, and dozens of threads
# fighting over the GIL and the connection pool answer slower than a few in turn.
_LIMITER = anyio.CapacityLimiter(4)


def api_actor(key: ApiClient) -> Actor:
    """A machine client reads every store's entry, and nothing else here."""
    return Actor(name=f"api:{key.prefix}", role=Role.viewer)


def _answer(request: Request) -> Response:
    # Authentication and the lookup share one trip to the worker thread.
    key = authenticate_request(request)
    if key is None:
        return unauthorized()
    crm_store_id = request.path_params["crm_store_id"]
    with Session(get_engine()) as session:
        entry = entries.entry_for_store(session=session, actor=api_actor(key), crm_store_id=crm_store_id)
    if entry is None:
        return JSONResponse({"error": "unknown_store", "crm_store_id": crm_store_id}, status_code=404)
    return JSONResponse(entry.as_json(), headers={"Cache-Control": "no-store"})


async def store_entry(request: Request) -> Response:
    return await anyio.to_thread.run_sync(_answer, request, limiter=_LIMITER)


ROUTES = [Route("/api/v1/stores/{crm_store_id}/entry", store_entry, methods=["GET"])]

"""The `X-API-Key` check shared by every /api/v1 route."""

from starlette.requests import Request
from starlette.responses import JSONResponse

from core.auth.api_keys import ApiClient, authenticate_client
from db.engine import get_engine


def authenticate_request(request: Request) -> ApiClient | None:
    """The client of the request, or None. Reads the key table at most every
    CACHE_SECONDS per key and never writes, so the SQLite entry route may call it
    on the event loop; a database across the network needs a worker thread."""
    return authenticate_client(engine=get_engine(), key=request.headers.get("x-api-key"))


def unauthorized() -> JSONResponse:
    return JSONResponse({"error": "invalid_api_key", "message": "missing or invalid X-API-Key"}, status_code=401)

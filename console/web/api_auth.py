"""The `X-API-Key` check shared by every /api/v1 route."""

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import JSONResponse

from core.auth import api_keys
from core.timeutil import utcnow
from db.engine import get_engine
from db.models import ApiKey

# last_used_at is written at most this often per key, not on every request.
TOUCH_SECONDS = 60


def authenticate_request(request: Request) -> ApiKey | None:
    """The live API key of the request, or None. Runs in a worker thread."""
    with Session(get_engine()) as session:
        key = api_keys.authenticate(session=session, key=request.headers.get("x-api-key"))
        if key is not None:
            now = utcnow()
            if key.last_used_at is None or (now - key.last_used_at).total_seconds() > TOUCH_SECONDS:
                key.last_used_at = now
                session.add(key)
                session.commit()
        return key


def unauthorized() -> JSONResponse:
    return JSONResponse({"error": "invalid_api_key", "message": "missing or invalid X-API-Key"}, status_code=401)

"""POST /api/v1/events: a JSON array of at most 1,000 tracking events from the
App backend (`X-API-Key`). Answers {"accepted", "duplicates", "rejected":
[{"index", "error"}]}; bad events never stop good ones."""

import json
import logging

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from console.web.api_auth import authenticate_request, unauthorized
from core.auth.permissions import system_actor
from core.funnel import intake
from db.engine import session_scope
from i18n import ENGLISH, translate

log = logging.getLogger("console.events")

# 1,000 events of a few hundred bytes each fit comfortably; more is refused unread.
MAX_BODY_BYTES = 2 * 1024 * 1024


def _error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


async def _read_body(request: Request) -> bytes | None:
    """The body, or None as soon as it passes the limit."""
    declared = request.headers.get("content-length")
    if declared and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    return bytes(body)


def _ingest(events: list, key_name: str) -> intake.IntakeResult:
    with session_scope(urgent=True) as session:
        return intake.ingest_events(session=session, actor=system_actor(f"api:{key_name}"[:64]), events=events)


async def post_events(request: Request) -> JSONResponse:
    key = await run_in_threadpool(authenticate_request, request)
    if key is None:
        return unauthorized()
    body = await _read_body(request)
    if body is None:
        return _error("body_too_large", f"the body is limited to {MAX_BODY_BYTES} bytes", 413)
    try:
        events = json.loads(body)
    except (ValueError, RecursionError):
        # ValueError: broken JSON, not UTF-8, or an integer past Python's 4,300 digits;
        # RecursionError: nested deeper than the parser goes (no event is).
        return _error("invalid_json", "the body is not JSON", 400)
    if not isinstance(events, list):
        return _error("expected_array", "the body must be a JSON array of events", 400)
    if len(events) > intake.MAX_BATCH:
        return _error("batch_too_large", f"at most {intake.MAX_BATCH} events per request", 413)
    try:
        result = await run_in_threadpool(_ingest, events, key.name)
    except SQLAlchemyError as exc:
        log.error("event intake failed: %s", exc)
        return _error("unavailable", "events could not be stored; send them again", 503)
    return JSONResponse({
        "accepted": result.accepted, "duplicates": result.duplicates,
        "rejected": [{"index": index, "error": translate(problem, params, ENGLISH)}
                     for index, problem, params in result.rejected],
    })


ROUTES = [Route("/api/v1/events", post_events, methods=["POST"])]

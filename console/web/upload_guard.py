"""Streamlit's file-upload route (`PUT /_stcore/upload_file/{session}/{file}`) only
for a logged-in user whose role has an uploading page, and only as large as the
largest file that role's pages accept.

Streamlit itself accepts any visitor holding a websocket session and keeps each
file in memory until the session ends; this ASGI middleware stands in front of it.
Bytes are counted as they arrive, so a missing or false Content-Length changes nothing.
"""

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console.web.cookies import SESSION_COOKIE, unsign_session
from core import sheets
from core.auth import sessions
from core.auth.permissions import Actor, Capability
from core.funnel.intake import MAX_FILE_BYTES as EVENT_FILE_BYTES
from db.engine import session_scope
from i18n import t

UPLOAD_PATH = "/_stcore/upload_file/"
# The multipart envelope around the file (boundaries, headers, the file name).
ENVELOPE_BYTES = 64 * 1024

# Each uploading capability and the largest file its page accepts.
UPLOAD_LIMITS: dict[Capability, int] = {
    Capability.import_events: EVENT_FILE_BYTES,
    Capability.upload_bindings: sheets.MAX_BYTES,
    Capability.manage_stores: sheets.MAX_BYTES,
}


def upload_limit(actor: Actor | None) -> int | None:
    """The largest upload this actor's pages accept, or None when none of them takes a file."""
    limits = [size for capability, size in UPLOAD_LIMITS.items() if actor is not None and actor.can(capability)]
    return max(limits) if limits else None


def _actor(token: str | None) -> Actor | None:
    with session_scope() as session:
        return sessions.resolve(session=session, token=token)


class UploadGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "PUT" or UPLOAD_PATH not in scope["path"]:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = unsign_session(request.cookies.get(SESSION_COOKIE))
        limit = upload_limit(await run_in_threadpool(_actor, token) if token else None)
        if limit is None:
            await PlainTextResponse(t("upload.refused"), status_code=403)(scope, receive, send)
            return
        cap = limit + ENVELOPE_BYTES
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await PlainTextResponse(t("upload.too_large", limit_mb=limit // (1024 * 1024)),
                                    status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > cap:
                # Raised inside Streamlit's handler, which answers it as a 413 and drops the parts.
                raise HTTPException(status_code=413, detail="File too large")
            return message

        await self.app(scope, counted, send)

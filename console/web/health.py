"""GET /healthz: database reachable and the sidecar's heartbeat age."""

import logging

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from base.timeutil import utcnow
from core.scheduling.lease import heartbeat
from db.engine import DatabaseUnavailable, check_database, get_engine

log = logging.getLogger(__name__)

# Older than this, the sidecar is reported as stale (it renews every 10 s).
STALE_AFTER_SECONDS = 60


def healthz(_request: Request) -> JSONResponse:
    engine = get_engine()
    try:
        check_database(engine)
    except DatabaseUnavailable as exc:
        # The route needs no login: where the database lives stays in the log.
        log.error("healthz: %s", exc)
        return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
    with Session(engine) as session:
        lease = heartbeat(session=session)
    now = utcnow()
    age = None if lease is None else max(0.0, (now - lease.renewed_at).total_seconds())
    if lease is None:
        scheduler = "missing"
    elif lease.expires_at < now:
        scheduler = "stopped"  # the last sidecar released or lost its lease
    else:
        scheduler = "stale" if age > STALE_AFTER_SECONDS else "ok"
    return JSONResponse({"status": "ok", "database": "ok", "scheduler": scheduler,
                         "scheduler_heartbeat_age_seconds": None if age is None else round(age, 1)})


ROUTES = [Route("/healthz", healthz, methods=["GET"])]

"""Incidents: alerts about a store's contact code or the chain's 获客链接 quota
rather than an account's capacity. They live in the alert log beside the
capacity alerts (one list on the alerts page: seen, filtered, acknowledged the
same way), naming a store (or nothing: the quota is the chain's, so HQ's) and
saying what happened as key + params.

An incident is an episode: opened with its message in the outbox, in the
caller's transaction (persisted before it is sent), and closed when the cause
is gone, so the next occurrence is a new alert.
"""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col

from base.problems import Problem
from core.alerts import outbox
from db.models import CapacityAlert
from i18n import t

# A param of an incident's detail naming a WeCom reason (a catalog key) that is
# put into words, with the errcode and errmsg beside it, where the detail is shown.
REASON_KEY = "reason_key"


def open_incident(*, session: Session, level: str, store_id: int | None, branch_id: int | None, detail: str,
                  text: str, now: datetime) -> CapacityAlert:
    """A new open incident and its message to the channels that take its branch's alerts."""
    alert = CapacityAlert(level=level, level_pct=0, store_id=store_id, branch_id=branch_id, detail=detail,
                          opened_at=now)
    session.add(alert)
    session.flush()
    if outbox.enqueue(session=session, alert_id=alert.id, branch_id=branch_id, text=text, now=now):
        alert.last_notified_at = now
        alert.notify_count = 1
    return alert


def close_incidents(*, session: Session, level: str, now: datetime, store_ids: Iterable[int] | None = None) -> int:
    """End the open episodes of `level` (of those stores; every one without `store_ids`)."""
    query = update(CapacityAlert).where(col(CapacityAlert.level) == level, col(CapacityAlert.closed_at).is_(None))
    if store_ids is not None:
        ids = list(store_ids)
        if not ids:
            return 0
        query = query.where(col(CapacityAlert.store_id).in_(ids))
    return session.exec(query.values(closed_at=now, version=col(CapacityAlert.version) + 1)).rowcount


def detail_text(stored: str) -> str:
    """An incident's detail in words."""
    detail = Problem.decode(stored)
    params = dict(detail.params)
    reason_key = params.pop(REASON_KEY, None)
    if isinstance(reason_key, str):
        params["reason"] = t(reason_key, errcode=params.get("errcode"), errmsg=params.get("errmsg"))
    return t(detail.key, **params)

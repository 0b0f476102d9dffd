"""The alert outbox: rows written with their alert, delivered later by the
sidecar. Each robot's per-minute limit is respected; when more messages wait
than a robot may take, the overflow goes out as one digest, never dropped.
Failures retry with backoff until `retry_until` (24 h), then stay visible as
failed with the last error."""

import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from console.messages import t
from core.alerts.robots import MAX_BYTES, MIN_GAP_SECONDS, PER_MINUTE, RobotError, Target, send
from core.timeutil import utcnow
from db.models import AlertChannel, AlertDelivery, DeliveryStatus

log = logging.getLogger("alerts")

RETRY_FOR = timedelta(hours=24)
WINDOW = timedelta(seconds=60)
FIRST_RETRY_SECONDS = 15
MAX_RETRY_SECONDS = 30 * 60
SEND_TIMEOUT_SECONDS = 10.0
QUIET_SECONDS = 15


def enqueue(*, session: Session, alert_id: int | None, branch_id: int | None, text: str,
            now: datetime | None = None) -> int:
    """One delivery per enabled channel that takes this alert: channels without a
    branch take every alert, a branch's channel takes its branch's."""
    now = now or utcnow()
    query = select(AlertChannel).where(col(AlertChannel.enabled).is_(True))
    if branch_id is None:
        query = query.where(col(AlertChannel.branch_id).is_(None))
    else:
        query = query.where(or_(col(AlertChannel.branch_id).is_(None), col(AlertChannel.branch_id) == branch_id))
    channels = session.exec(query).all()
    for channel in channels:
        session.add(AlertDelivery(alert_id=alert_id, channel_id=channel.id, text=text, created_at=now,
                                  next_attempt_at=now, retry_until=now + RETRY_FOR))
    return len(channels)


def quiet_wait(local_now: datetime) -> float:
    """Seconds to hold back so that nothing is sent in the first seconds of the
    hour or half hour, when the robot platforms ask senders to stay away."""
    if local_now.minute in (0, 30) and local_now.second < QUIET_SECONDS:
        return QUIET_SECONDS - local_now.second - local_now.microsecond / 1e6
    return 0.0


def retry_delay(attempts: int) -> timedelta:
    base = min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(0, attempts - 1))
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


def digest_text(texts: list[str], kind: str) -> str:
    """One message for many: each alert's first line, as many as fit."""
    limit = MAX_BYTES[kind] - 120
    lines = [t("alerts.digest.header", count=len(texts))]
    used = len(lines[0].encode())
    for number, text in enumerate(texts):
        line = text.splitlines()[0] if text else ""
        if used + len(line.encode()) + 1 > limit:
            lines.append(t("alerts.digest.more", count=len(texts) - number))
            break
        lines.append(line)
        used += len(line.encode()) + 1
    return "\n".join(lines)


@dataclass
class DeliveryFigures:
    sent: int = 0
    messages: int = 0
    digests: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    waiting_for_rate: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"sent": self.sent, "messages": self.messages, "digests": self.digests,
                "failed_attempts": self.failed_attempts, "gave_up": self.gave_up,
                "waiting_for_rate": self.waiting_for_rate}


def deliver_due(*, engine: Engine, now: datetime | None = None, http: httpx.Client | None = None) -> DeliveryFigures:
    """Send what is due. No database transaction is held while a robot answers;
    each outcome is committed right after its send."""
    figures = DeliveryFigures()
    own_http = http is None
    http = http or httpx.Client(timeout=SEND_TIMEOUT_SECONDS)
    try:
        with Session(engine, expire_on_commit=False) as session:
            now = now or utcnow()
            gave_up = session.exec(update(AlertDelivery).where(
                col(AlertDelivery.status) == DeliveryStatus.pending, col(AlertDelivery.retry_until) < now)
                .values(status=DeliveryStatus.failed, version=AlertDelivery.version + 1)).rowcount
            session.commit()
            figures.gave_up = gave_up
            due = session.exec(select(AlertDelivery).where(
                col(AlertDelivery.status) == DeliveryStatus.pending, col(AlertDelivery.next_attempt_at) <= now)
                .order_by(AlertDelivery.created_at, AlertDelivery.id)).all()
            by_channel: dict[int, list[AlertDelivery]] = defaultdict(list)
            for delivery in due:
                by_channel[delivery.channel_id].append(delivery)
            channels = {c.id: c for c in session.exec(select(AlertChannel).where(
                col(AlertChannel.id).in_(list(by_channel)))).all()} if by_channel else {}
        for channel_id, deliveries in by_channel.items():
            channel = channels[channel_id]
            if not channel.enabled:
                continue
            _deliver_channel(engine, channel, deliveries, now, http, figures)
    finally:
        if own_http:
            http.close()
    return figures


def _budget(channel: AlertChannel, now: datetime) -> tuple[int, datetime, int]:
    """(sends allowed now, window start, sends in the window)."""
    limit = PER_MINUTE[channel.kind]
    if channel.window_started_at is None or channel.window_started_at <= now - WINDOW:
        return limit, now, 0
    return max(0, limit - channel.window_sends), channel.window_started_at, channel.window_sends


def _deliver_channel(engine: Engine, channel: AlertChannel, deliveries: list[AlertDelivery], now: datetime,
                     http: httpx.Client, figures: DeliveryFigures) -> None:
    budget, window_start, window_sends = _budget(channel, now)
    if budget == 0:
        figures.waiting_for_rate += len(deliveries)
        return
    if len(deliveries) <= budget:
        batches = [[d] for d in deliveries]
    else:
        batches = [[d] for d in deliveries[:budget - 1]] + [deliveries[budget - 1:]]
    target = Target(channel.kind, channel.url, channel.secret)
    for number, batch in enumerate(batches):
        if number:
            time.sleep(MIN_GAP_SECONDS.get(channel.kind, 0))
        text = batch[0].text if len(batch) == 1 else digest_text([d.text for d in batch], channel.kind)
        error = None
        try:
            send(target, text, http=http)
        except RobotError as exc:
            error = str(exc)
        sent_at = utcnow()
        window_sends += 1
        ids = [d.id for d in batch]
        with Session(engine) as session:
            channel_values: dict = {"window_started_at": window_start, "window_sends": window_sends}
            if error is None:
                session.exec(update(AlertDelivery).where(col(AlertDelivery.id).in_(ids),
                                                         col(AlertDelivery.status) == DeliveryStatus.pending)
                             .values(status=DeliveryStatus.sent, sent_at=sent_at, attempts=AlertDelivery.attempts + 1,
                                     digest_size=len(batch) if len(batch) > 1 else None,
                                     version=AlertDelivery.version + 1))
                channel_values["last_success_at"] = sent_at
            else:
                for delivery in batch:
                    attempts = delivery.attempts + 1
                    next_at = sent_at + retry_delay(attempts)
                    status = DeliveryStatus.failed if next_at > delivery.retry_until else DeliveryStatus.pending
                    session.exec(update(AlertDelivery).where(col(AlertDelivery.id) == delivery.id,
                                                             col(AlertDelivery.status) == DeliveryStatus.pending)
                                 .values(attempts=attempts, next_attempt_at=next_at, last_error=error, status=status,
                                         version=AlertDelivery.version + 1))
                    figures.gave_up += status == DeliveryStatus.failed
                channel_values.update(last_error=error, last_error_at=sent_at)
            session.exec(update(AlertChannel).where(col(AlertChannel.id) == channel.id).values(**channel_values))
            session.commit()
        if error is not None:
            figures.failed_attempts += len(batch)
            figures.errors[channel.name] = error
            log.warning("alert channel %s (%s): %s", channel.id, channel.kind, error)
            # The robot is down or throttling: the rest wait for the next run.
            return
        figures.sent += len(batch)
        figures.messages += 1
        figures.digests += len(batch) > 1

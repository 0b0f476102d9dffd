"""The alert outbox: rows written with their alert, delivered later by the
sidecar. Failures retry with backoff until `retry_until` (24 h), then stay
visible as failed with the last error.

Rate: each robot takes so many messages in any 60 seconds. Every message handed
to a robot is recorded (`robot_send`), and a pass sends only what the last
minute of records leaves room for. When more messages wait than that, they go
out as digests, each holding whole alert texts up to the platform's size limit;
digests that do not fit this minute wait for the next passes. No line is dropped.

Delivery is at least once, never at most once. A batch is first claimed
('sending', with the attempt counted and the send recorded) in one transaction,
then sent, then marked sent in another. A sidecar killed between the two, or a
robot that took the message but whose answer was lost, leaves the outcome
unknown: the message is sent again and `uncertain_sends` counts the possible
duplicate. A claim is made only while the lease outlasts the send, so a claim
left by an earlier holder is never still in flight when the next pass starts.
"""

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import delete, func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from base.problems import problem
from base.timeutil import utcnow
from core.alerts.robots import MAX_BYTES, MIN_GAP_SECONDS, PER_MINUTE, RobotError, Target, send
from core.scheduling.lease import Fence, LeaseLost
from db.models import AlertChannel, AlertDelivery, DeliveryStatus
from db.models.capacity import RobotSend
from i18n import t

log = logging.getLogger("alerts")

RETRY_FOR = timedelta(hours=24)
# The robots count a minute; two seconds more cover the gap between our clock
# (the send is recorded just before the request) and theirs.
WINDOW = timedelta(seconds=62)
KEEP_SENDS = timedelta(hours=1)
FIRST_RETRY_SECONDS = 15
MAX_RETRY_SECONDS = 30 * 60
SEND_TIMEOUT_SECONDS = 10.0
CLAIM_MARGIN = timedelta(seconds=SEND_TIMEOUT_SECONDS + 5)
QUIET_SECONDS = 15


def enabled_channels(*, session: Session) -> list[AlertChannel]:
    return list(session.exec(select(AlertChannel).where(col(AlertChannel.enabled).is_(True))
                             .order_by(AlertChannel.id)).all())


def enqueue(*, session: Session, alert_id: int | None, branch_id: int | None, text: str,
            now: datetime | None = None, channels: list[AlertChannel] | None = None) -> int:
    """One delivery per enabled channel that takes this alert: channels without a
    branch take every alert, a branch's channel takes its branch's. `channels`:
    the enabled channels, when the caller already read them."""
    now = now or utcnow()
    if channels is None:
        channels = enabled_channels(session=session)
    targets = [c for c in channels if c.branch_id is None or (branch_id is not None and c.branch_id == branch_id)]
    for channel in targets:
        session.add(AlertDelivery(alert_id=alert_id, channel_id=channel.id, text=text, created_at=now,
                                  next_attempt_at=now, retry_until=now + RETRY_FOR))
    return len(targets)


def quiet_wait(local_now: datetime) -> float:
    """Seconds to hold back so that nothing is sent in the first seconds of the
    hour or half hour, when the robot platforms ask senders to stay away."""
    if local_now.minute in (0, 30) and local_now.second < QUIET_SECONDS:
        return QUIET_SECONDS - local_now.second - local_now.microsecond / 1e6
    return 0.0


def retry_delay(attempts: int) -> timedelta:
    base = min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(0, attempts - 1))
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


def digest_text(texts: list[str]) -> str:
    """One message for several alerts, each in full."""
    return "\n".join([t("alerts.digest.header", count=len(texts))]
                     + [f"{number}. {text}" for number, text in enumerate(texts, start=1)])


def pack(texts: list[str], kind: str) -> list[list[int]]:
    """Split the texts, in order, into digests within the platform's size limit
    (indexes into `texts`). A text too long to share a message goes alone."""
    limit = MAX_BYTES[kind]
    groups: list[list[int]] = []
    current: list[int] = []
    for index, text in enumerate(texts):
        if current and len(digest_text([texts[i] for i in current] + [text]).encode()) > limit:
            groups.append(current)
            current = []
        current.append(index)
    if current:
        groups.append(current)
    return groups


def sends_in_window(*, session: Session, channel_id: int, at: datetime) -> int:
    """Messages handed to this robot in the sliding window before `at`."""
    return session.exec(select(func.count()).select_from(RobotSend).where(
        col(RobotSend.channel_id) == channel_id, col(RobotSend.sent_at) > at - WINDOW)).one()


def record_send(*, session: Session, channel_id: int, at: datetime) -> None:
    session.add(RobotSend(channel_id=channel_id, sent_at=at))


@dataclass
class DeliveryFigures:
    sent: int = 0
    messages: int = 0
    digests: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    waiting_for_rate: int = 0
    # Claims found unconfirmed at the start of the pass (a sidecar stopped mid-send).
    recovered: int = 0
    # Sends with an unknown outcome: the group may see these twice.
    uncertain: int = 0
    held_by_disabled_channel: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"sent": self.sent, "messages": self.messages, "digests": self.digests,
                "failed_attempts": self.failed_attempts, "gave_up": self.gave_up,
                "waiting_for_rate": self.waiting_for_rate, "recovered": self.recovered,
                "uncertain": self.uncertain, "held_by_disabled_channel": self.held_by_disabled_channel}


def deliver_due(*, engine: Engine, now: datetime | None = None, http: httpx.Client | None = None,
                fence: Fence | None = None) -> DeliveryFigures:
    """Send what is due. No database transaction is held while a robot answers.
    One channel's failure, whatever it is, never keeps the others from their
    messages. With a `fence`, every claim checks the lease first; once it is lost
    the pass stops (LeaseLost)."""
    figures = DeliveryFigures()
    started, started_clock = now or utcnow(), time.monotonic()

    def clock() -> datetime:
        return started + timedelta(seconds=time.monotonic() - started_clock)

    own_http = http is None
    http = http or httpx.Client(timeout=SEND_TIMEOUT_SECONDS)
    try:
        with Session(engine, expire_on_commit=False) as session:
            figures.recovered = _recover_claims(session, started)
            figures.uncertain += figures.recovered
            figures.gave_up = session.exec(update(AlertDelivery).where(
                col(AlertDelivery.status) == DeliveryStatus.pending, col(AlertDelivery.retry_until) < started)
                .values(status=DeliveryStatus.failed, version=AlertDelivery.version + 1,
                        last_error=func.coalesce(AlertDelivery.last_error, problem("alerts.delivery.expired_untried")))
            ).rowcount
            session.exec(delete(RobotSend).where(col(RobotSend.sent_at) < started - KEEP_SENDS))
            if fence is not None:
                fence.check(session)
            session.commit()
            due = session.exec(select(AlertDelivery).where(
                col(AlertDelivery.status) == DeliveryStatus.pending, col(AlertDelivery.next_attempt_at) <= started)
                .order_by(AlertDelivery.created_at, AlertDelivery.id)).all()
            by_channel: dict[int, list[AlertDelivery]] = defaultdict(list)
            for delivery in due:
                by_channel[delivery.channel_id].append(delivery)
            channels = {c.id: c for c in session.exec(select(AlertChannel).where(
                col(AlertChannel.id).in_(list(by_channel)))).all()} if by_channel else {}
        for channel_id, deliveries in by_channel.items():
            channel = channels[channel_id]
            if not channel.enabled:
                _hold_for_disabled_channel(engine, [d.id for d in deliveries])
                figures.held_by_disabled_channel += len(deliveries)
                continue
            try:
                _deliver_channel(engine, channel, deliveries, clock, http, fence, figures)
            except LeaseLost:
                raise
            except Exception as exc:  # isolate: the next channel still gets its messages
                log.exception("alert channel %s (%s) failed", channel.id, channel.kind)
                error = RobotError("alerts.robot.unexpected", error=f"{type(exc).__name__}: {exc}")
                figures.errors[channel.name] = str(error)
                _note_channel_error(engine, channel.id, error, clock())
    finally:
        if own_http:
            http.close()
    return figures


def _recover_claims(session: Session, now: datetime) -> int:
    """Claims no sender will confirm any more go back to pending, due now. Passes
    never overlap (one sidecar acts; its passes run one at a time) and a claim
    is made only while the lease outlasts the send, so every claim still open
    when a pass starts belongs to a send that ended without its outcome recorded."""
    return session.exec(update(AlertDelivery).where(col(AlertDelivery.status) == DeliveryStatus.sending).values(
        status=DeliveryStatus.pending, next_attempt_at=now, claimed_at=None, claim_token=None,
        uncertain_sends=AlertDelivery.uncertain_sends + 1, last_error=problem("alerts.delivery.unconfirmed"),
        version=AlertDelivery.version + 1)).rowcount


def _hold_for_disabled_channel(engine: Engine, ids: list[int]) -> None:
    """Kept pending (re-enabling the channel sends them) with the reason in view;
    after 24 hours they turn failed with it."""
    reason = problem("alerts.delivery.channel_disabled")
    with Session(engine) as session:
        session.exec(update(AlertDelivery).where(
            col(AlertDelivery.id).in_(ids), col(AlertDelivery.status) == DeliveryStatus.pending,
            func.coalesce(AlertDelivery.last_error, "") != reason).values(last_error=reason))
        session.commit()


def _note_channel_error(engine: Engine, channel_id: int, error: RobotError, at: datetime) -> None:
    try:
        with Session(engine) as session:
            session.exec(update(AlertChannel).where(col(AlertChannel.id) == channel_id)
                         .values(last_error=error.problem.encode(), last_error_at=at))
            session.commit()
    except Exception:
        log.exception("could not record the error of alert channel %s", channel_id)


def _deliver_channel(engine: Engine, channel: AlertChannel, deliveries: list[AlertDelivery],
                     clock: Callable[[], datetime], http: httpx.Client, fence: Fence | None,
                     figures: DeliveryFigures) -> None:
    with Session(engine) as session:
        budget = PER_MINUTE[channel.kind] - sends_in_window(session=session, channel_id=channel.id, at=clock())
    if budget <= 0:
        figures.waiting_for_rate += len(deliveries)
        return
    if len(deliveries) <= budget:
        batches = [[delivery] for delivery in deliveries]
    else:
        batches = [[deliveries[i] for i in group] for group in pack([d.text for d in deliveries], channel.kind)]
    figures.waiting_for_rate += sum(len(batch) for batch in batches[budget:])
    target = Target(channel.kind, channel.url, channel.secret)
    token = fence.token if fence is not None else None
    claimed_by_me = (col(AlertDelivery.claim_token) == token) if token is not None \
        else col(AlertDelivery.claim_token).is_(None)
    for number, batch in enumerate(batches[:budget]):
        if number:
            time.sleep(MIN_GAP_SECONDS.get(channel.kind, 0))
        ids = [d.id for d in batch]
        with Session(engine) as session:
            claimed_at = clock()
            claimed = session.exec(update(AlertDelivery).where(
                col(AlertDelivery.id).in_(ids), col(AlertDelivery.status) == DeliveryStatus.pending).values(
                status=DeliveryStatus.sending, claimed_at=claimed_at, claim_token=token,
                attempts=AlertDelivery.attempts + 1, version=AlertDelivery.version + 1)).rowcount
            if claimed != len(ids):
                # Changed since this pass read them (an operator's retry, another pass): leave them.
                session.rollback()
                continue
            record_send(session=session, channel_id=channel.id, at=claimed_at)
            if fence is not None:
                fence.check(session, lasting=CLAIM_MARGIN)
            session.commit()
        text = batch[0].text if len(batch) == 1 else digest_text([d.text for d in batch])
        error: RobotError | None = None
        try:
            send(target, text, http=http)
        except RobotError as exc:
            error = exc
        answered_at = clock()
        with Session(engine) as session:
            mine = (col(AlertDelivery.status) == DeliveryStatus.sending, claimed_by_me)
            if error is None:
                session.exec(update(AlertDelivery).where(col(AlertDelivery.id).in_(ids), *mine).values(
                    status=DeliveryStatus.sent, sent_at=answered_at,
                    digest_size=len(batch) if len(batch) > 1 else None, version=AlertDelivery.version + 1))
                session.exec(update(AlertChannel).where(col(AlertChannel.id) == channel.id)
                             .values(last_success_at=answered_at))
            else:
                stored = error.problem.encode()
                for delivery in batch:
                    next_at = answered_at + retry_delay(delivery.attempts + 1)
                    status = DeliveryStatus.failed if next_at > delivery.retry_until else DeliveryStatus.pending
                    session.exec(update(AlertDelivery).where(col(AlertDelivery.id) == delivery.id, *mine).values(
                        status=status, next_attempt_at=next_at, last_error=stored, claimed_at=None,
                        claim_token=None, uncertain_sends=AlertDelivery.uncertain_sends + int(error.maybe_delivered),
                        version=AlertDelivery.version + 1))
                    figures.gave_up += status == DeliveryStatus.failed
                session.exec(update(AlertChannel).where(col(AlertChannel.id) == channel.id)
                             .values(last_error=stored, last_error_at=answered_at))
            session.commit()
        if error is not None:
            figures.failed_attempts += len(batch)
            figures.uncertain += len(batch) if error.maybe_delivered else 0
            figures.errors[channel.name] = str(error)
            log.warning("alert channel %s (%s): %s", channel.id, channel.kind, error)
            # The robot is down or throttling: the rest wait for the next pass.
            return
        figures.sent += len(batch)
        figures.messages += 1
        figures.digests += len(batch) > 1

"""The alert outbox: rows written with their alert, delivered later by the
sidecar. Failures retry with backoff until `retry_until` (24 h), then stay
visible as failed with the last error.

Rate: each robot takes so many messages in any 60 seconds. Every message handed
to a robot is recorded (`robot_send`), and a pass sends only what the last
minute of records leaves room for. When more messages wait than that, they go
out as digests, each holding whole alert texts up to the platform's size limit;
digests that do not fit this minute wait for the next passes. No line is dropped.

App-message channels (wecom_app) send each alert on its own, as a WeCom
textcard to the members fixed when it was queued, paced per member instead
(core/alerts/app_messages.py): a message waits while one of its members has
no room left.

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
from functools import partial

import httpx
from sqlalchemy import delete, func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from base.config import get_settings
from base.problems import problem
from base.timeutil import utcnow
from core.alerts import app_messages
from core.alerts.robots import MAX_BYTES, MIN_GAP_SECONDS, PER_MINUTE, RobotError, Target, send
from core.scheduling.lease import Fence, LeaseLost
from core.wecom.client import WeComClient, WeComError
from core.wecom.messages import send_textcard
from db.models import AlertChannel, AlertDelivery, CapacityAlert, ChannelKind, DeliveryStatus
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
                             .order_by(col(AlertChannel.id))).all())


def enqueue(*, session: Session, alert_id: int | None, branch_id: int | None, text: str,
            now: datetime | None = None, channels: list[AlertChannel] | None = None) -> int:
    """One delivery per enabled channel that takes this alert: channels without a
    branch take every alert, a branch's channel takes its branch's; an
    app-message channel only when it has members to message, fixed now.
    `channels`: the enabled channels, when the caller already read them."""
    now = now or utcnow()
    if channels is None:
        channels = enabled_channels(session=session)
    targets = [c for c in channels if c.branch_id is None or (branch_id is not None and c.branch_id == branch_id)]
    queued = 0
    for channel in targets:
        assert channel.id is not None  # a loaded row has its key
        recipients: str | None = None
        if channel.kind == ChannelKind.wecom_app:
            members = app_messages.recipients_for(
                session=session, listed=channel.recipients, to_branch_managers=channel.to_branch_managers,
                branch_id=branch_id, now=now)
            if not members:
                continue
            recipients = "|".join(members)
        session.add(AlertDelivery(alert_id=alert_id, channel_id=channel.id, text=text, recipients=recipients,
                                  created_at=now, next_attempt_at=now, retry_until=now + RETRY_FOR))
        queued += 1
    return queued


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
                fence: Fence | None = None, wecom: WeComClient | None = None) -> DeliveryFigures:
    """Send what is due. No database transaction is held while a robot (or
    WeCom, for app messages) answers. One channel's failure, whatever it is,
    never keeps the others from their messages. With a `fence`, every claim
    checks the lease first; once it is lost the pass stops (LeaseLost).
    `wecom`: the self-built app's client; by default one from the settings."""
    figures = DeliveryFigures()
    started, started_clock = now or utcnow(), time.monotonic()

    def clock() -> datetime:
        return started + timedelta(seconds=time.monotonic() - started_clock)

    own_http = http is None
    http = http or httpx.Client(timeout=SEND_TIMEOUT_SECONDS)
    own_wecom: WeComClient | None = None
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
            app_messages.forget_old_sends(session=session, now=started)
            if fence is not None:
                fence.check(session)
            session.commit()
            due = session.exec(select(AlertDelivery).where(
                col(AlertDelivery.status) == DeliveryStatus.pending, col(AlertDelivery.next_attempt_at) <= started)
                .order_by(col(AlertDelivery.created_at), col(AlertDelivery.id))).all()
            by_channel: dict[int, list[AlertDelivery]] = defaultdict(list)
            for delivery in due:
                by_channel[delivery.channel_id].append(delivery)
            channels = {c.id: c for c in session.exec(select(AlertChannel).where(
                col(AlertChannel.id).in_(list(by_channel)))).all()} if by_channel else {}
        if wecom is None and any(c.kind == ChannelKind.wecom_app for c in channels.values()):
            wecom = own_wecom = app_messages.app_client()
        for channel_id, deliveries in by_channel.items():
            channel = channels[channel_id]
            if not channel.enabled:
                _hold_for_disabled_channel(engine, deliveries)
                figures.held_by_disabled_channel += len(deliveries)
                continue
            try:
                if channel.kind == ChannelKind.wecom_app:
                    _deliver_app_channel(engine, channel, deliveries, clock, wecom, fence, figures)
                else:
                    _deliver_channel(engine, channel, deliveries, clock, http, fence, figures)
            except LeaseLost:
                raise
            except Exception as exc:  # isolate: the next channel still gets its messages
                log.exception("alert channel %s (%s) failed", channel.id, channel.kind)
                error = RobotError("alerts.robot.unexpected", error=f"{type(exc).__name__}: {exc}")
                figures.errors[channel.name] = str(error)
                _note_channel_error(engine, channel_id, error, clock())
    finally:
        if own_http:
            http.close()
        if own_wecom is not None:
            own_wecom.close()
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


def _hold_for_disabled_channel(engine: Engine, deliveries: list[AlertDelivery]) -> None:
    """Kept pending (re-enabling the channel sends them) with the reason in view;
    after 24 hours they turn failed with it."""
    reason = problem("alerts.delivery.channel_disabled")
    with Session(engine) as session:
        session.exec(update(AlertDelivery).where(
            col(AlertDelivery.id).in_([d.id for d in deliveries]), col(AlertDelivery.status) == DeliveryStatus.pending,
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
    assert channel.id is not None  # a loaded row has its key
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
    channel_id = channel.id
    for number, batch in enumerate(batches[:budget]):
        if number:
            time.sleep(MIN_GAP_SECONDS.get(channel.kind, 0))
        ids = [d.id for d in batch]
        claimed_at = _claim(engine, ids, clock, fence,
                            lambda session, at: record_send(session=session, channel_id=channel_id, at=at))
        if claimed_at is None:
            continue
        text = batch[0].text if len(batch) == 1 else digest_text([d.text for d in batch])
        error: RobotError | None = None
        try:
            send(target, text, http=http)
        except RobotError as exc:
            error = exc
        answered_at = clock()
        with Session(engine) as session:
            if error is None:
                _confirm_sent(session, channel_id, ids, fence, answered_at,
                              digest_size=len(batch) if len(batch) > 1 else None)
            else:
                _confirm_failed(session, channel_id, batch, fence, answered_at, error, figures)
            session.commit()
        if error is not None:
            _count_failure(channel, len(batch), error, figures)
            # The robot is down or throttling: the rest wait for the next pass.
            return
        figures.sent += len(batch)
        figures.messages += 1
        figures.digests += len(batch) > 1


def _deliver_app_channel(engine: Engine, channel: AlertChannel, deliveries: list[AlertDelivery],
                         clock: Callable[[], datetime], wecom: WeComClient | None, fence: Fence | None,
                         figures: DeliveryFigures) -> None:
    """Each alert is one textcard to the members fixed when it was queued, with
    WeCom's duplicate check so that a resend does not reach a member twice. A
    message whose members have no room left in their windows waits for it."""
    assert channel.id is not None  # a loaded row has its key
    channel_id = channel.id
    if wecom is None:
        missing = RobotError("alerts.app.not_configured")
        figures.errors[channel.name] = str(missing)
        _note_channel_error(engine, channel_id, missing, clock())
        return
    agent_id = get_settings().WECOM_AGENT_ID
    alert_ids = [d.alert_id for d in deliveries if d.alert_id is not None]
    with Session(engine) as session:
        levels = dict(session.exec(select(CapacityAlert.id, CapacityAlert.level).where(
            col(CapacityAlert.id).in_(alert_ids))).all()) if alert_ids else {}
        windows = app_messages.MemberWindows(
            session, [m for d in deliveries for m in app_messages.split_members(d.recipients)], clock())
    for delivery in deliveries:
        assert delivery.id is not None  # a loaded row has its key
        members = app_messages.split_members(delivery.recipients)
        free_at = windows.free_at(members, clock())
        if free_at is not None:
            _wait_until(engine, delivery.id, free_at)
            figures.waiting_for_rate += 1
            continue
        claimed_at = _claim(engine, [delivery.id], clock, fence, partial(windows.record, members=members))
        if claimed_at is None:
            continue
        title, url = app_messages.card(levels.get(delivery.alert_id) if delivery.alert_id is not None else None)
        error: RobotError | None = None
        invalid: tuple[str, ...] = ()
        try:
            invalid = send_textcard(wecom, agent_id=agent_id, touser=members, title=title, description=delivery.text,
                                    url=url, btntxt=t("alerts.app.button"),
                                    duplicate_check_interval=app_messages.DUPLICATE_CHECK_SECONDS).invalid_users
        except WeComError as exc:
            if exc.errcode == app_messages.ALL_INVALID:
                invalid = tuple(members)
            else:
                error = app_messages.send_error(exc)
        answered_at = clock()
        nobody = {userid.lower() for userid in members} <= {userid.lower() for userid in invalid}
        with Session(engine) as session:
            if error is not None:
                _confirm_failed(session, channel_id, [delivery], fence, answered_at, error, figures)
            elif nobody:
                # Nobody can receive it: retrying would not change that.
                session.exec(update(AlertDelivery).where(col(AlertDelivery.id) == delivery.id, *_still_mine(fence))
                             .values(status=DeliveryStatus.failed, claimed_at=None, claim_token=None,
                                     last_error=problem("alerts.app.no_valid_member", members=", ".join(members)),
                                     version=AlertDelivery.version + 1))
                figures.gave_up += 1
            else:
                values = {"last_error": problem("alerts.app.invalid_members", members=", ".join(invalid))} \
                    if invalid else {}
                _confirm_sent(session, channel_id, [delivery.id], fence, answered_at, **values)
            if error is None:
                app_messages.note_answer(session=session, channel_id=channel_id, members=members, invalid=invalid,
                                         at=answered_at)
            session.commit()
        if error is not None:
            _count_failure(channel, 1, error, figures)
            # WeCom is down or refusing the app: the rest wait for the next pass.
            return
        if not nobody:
            figures.sent += 1
            figures.messages += 1


def _wait_until(engine: Engine, delivery_id: int, at: datetime) -> None:
    with Session(engine) as session:
        session.exec(update(AlertDelivery).where(col(AlertDelivery.id) == delivery_id,
                                                 col(AlertDelivery.status) == DeliveryStatus.pending)
                     .values(next_attempt_at=at, version=AlertDelivery.version + 1))
        session.commit()


def _claim(engine: Engine, ids: list[int | None], clock: Callable[[], datetime], fence: Fence | None,
           record: Callable[[Session, datetime], None]) -> datetime | None:
    """Mark the deliveries as being sent, their attempt counted and the send
    recorded by `record`, in one transaction. None when one of them changed
    since this pass read it (an operator's retry, another pass): they are left alone."""
    with Session(engine) as session:
        claimed_at = clock()
        claimed = session.exec(update(AlertDelivery).where(
            col(AlertDelivery.id).in_(ids), col(AlertDelivery.status) == DeliveryStatus.pending).values(
            status=DeliveryStatus.sending, claimed_at=claimed_at, claim_token=fence.token if fence else None,
            attempts=AlertDelivery.attempts + 1, version=AlertDelivery.version + 1)).rowcount
        if claimed != len(ids):
            session.rollback()
            return None
        record(session, claimed_at)
        if fence is not None:
            fence.check(session, lasting=CLAIM_MARGIN)
        session.commit()
    return claimed_at


def _still_mine(fence: Fence | None) -> tuple:
    """Still claimed by this sender: a claim recovered or retried meanwhile is not confirmed."""
    token = fence.token if fence is not None else None
    return (col(AlertDelivery.status) == DeliveryStatus.sending,
            col(AlertDelivery.claim_token) == token if token is not None else col(AlertDelivery.claim_token).is_(None))


def _confirm_sent(session: Session, channel_id: int, ids: list[int | None], fence: Fence | None, at: datetime,
                  **values: object) -> None:
    session.exec(update(AlertDelivery).where(col(AlertDelivery.id).in_(ids), *_still_mine(fence)).values(
        status=DeliveryStatus.sent, sent_at=at, version=AlertDelivery.version + 1, **values))
    session.exec(update(AlertChannel).where(col(AlertChannel.id) == channel_id).values(last_success_at=at))


def _confirm_failed(session: Session, channel_id: int, batch: list[AlertDelivery], fence: Fence | None, at: datetime,
                    error: RobotError, figures: DeliveryFigures) -> None:
    """Back to pending after the backoff, or failed once that passes `retry_until`."""
    stored = error.problem.encode()
    for delivery in batch:
        next_at = at + retry_delay(delivery.attempts + 1)
        status = DeliveryStatus.failed if next_at > delivery.retry_until else DeliveryStatus.pending
        session.exec(update(AlertDelivery).where(col(AlertDelivery.id) == delivery.id, *_still_mine(fence)).values(
            status=status, next_attempt_at=next_at, last_error=stored, claimed_at=None, claim_token=None,
            uncertain_sends=AlertDelivery.uncertain_sends + int(error.maybe_delivered),
            version=AlertDelivery.version + 1))
        figures.gave_up += status == DeliveryStatus.failed
    session.exec(update(AlertChannel).where(col(AlertChannel.id) == channel_id)
                 .values(last_error=stored, last_error_at=at))


def _count_failure(channel: AlertChannel, count: int, error: RobotError, figures: DeliveryFigures) -> None:
    figures.failed_attempts += count
    figures.uncertain += count if error.maybe_delivered else 0
    figures.errors[channel.name] = str(error)
    log.warning("alert channel %s (%s): %s", channel.id, channel.kind, error)

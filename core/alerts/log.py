"""The alert log and the outbox as operators see them: list, acknowledge, retry."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit, InvalidInput, NotFound
from base.timeutil import utcnow
from core import audit
from core.alerts.incidents import detail_text
from core.alerts.outbox import RETRY_FOR
from core.auth.permissions import Actor, Capability, require
from db.models import Account, AlertChannel, AlertDelivery, Branch, CapacityAlert, DeliveryStatus, Store
from db.typed import select_columns

# What the alert log can be narrowed to: accounts' capacity (an alert naming an
# account), or incidents of the stores' contact codes and 获客链接 (naming none).
KINDS = ("capacity", "codes")


@dataclass(frozen=True)
class AlertRow:
    alert: CapacityAlert
    # The account of a capacity alert; None for an incident (a store's code, the link quota).
    userid: str | None
    account_name: str | None
    branch_name: str | None
    crm_store_id: str | None = None
    store_name: str | None = None
    # The alert's messages in the outbox, by status ('sending' counts as pending).
    sent: int = 0
    pending: int = 0
    failed: int = 0

    @property
    def without_channel(self) -> bool:
        """Notified level, but no channel took any message for it."""
        return self.alert.notified and self.alert.last_notified_at is None and not (
            self.sent or self.pending or self.failed)

    @property
    def detail(self) -> str:
        """What an incident is about, in words ('' for a capacity alert)."""
        return detail_text(self.alert.detail) if self.alert.detail else ""


def list_alerts(*, session: Session, actor: Actor, status: str = "open", kind: str | None = None, offset: int = 0,
                limit: int = 50) -> tuple[list[AlertRow], int]:
    """status: open | unacknowledged | all; kind: one of KINDS, or None for both. Newest first."""
    require(actor, Capability.manage_alerts)
    query = select_columns(CapacityAlert, Account.userid, Account.name, Branch.name, Store.crm_store_id,
                           Store.name).join(
        Account, col(Account.id) == CapacityAlert.account_id, isouter=True).join(
        Branch, col(Branch.id) == CapacityAlert.branch_id, isouter=True).join(
        Store, col(Store.id) == CapacityAlert.store_id, isouter=True)
    count = select(func.count()).select_from(CapacityAlert)
    filters: list[ColumnElement[bool]] = []
    if kind == "capacity":
        filters.append(col(CapacityAlert.account_id).is_not(None))
    elif kind == "codes":
        filters.append(col(CapacityAlert.account_id).is_(None))
    if status == "open":
        filters += [col(CapacityAlert.closed_at).is_(None), col(CapacityAlert.notified).is_(True)]
    elif status == "unacknowledged":
        filters += [col(CapacityAlert.acknowledged_at).is_(None), col(CapacityAlert.notified).is_(True)]
    if actor.branch_scope is not None:
        filters.append(col(CapacityAlert.branch_id) == actor.branch_scope)
    if filters:
        query, count = query.where(*filters), count.where(*filters)
    rows = session.exec(query.order_by(col(CapacityAlert.opened_at).desc(), col(CapacityAlert.id).desc())
                        .offset(offset).limit(limit)).all()
    alert_ids: list[int] = []
    for alert, *_ in rows:
        assert alert.id is not None  # a loaded row has its key
        alert_ids.append(alert.id)
    outbox = _outbox_counts(session, alert_ids)
    alerts = [AlertRow(alert, userid, name, branch, crm, store, **outbox.get(alert_id, {}))
              for alert_id, (alert, userid, name, branch, crm, store) in zip(alert_ids, rows, strict=True)]
    return alerts, session.exec(count).one()


def _outbox_counts(session: Session, alert_ids: list[int]) -> dict[int, dict[str, int]]:
    if not alert_ids:
        return {}
    counts: dict[int, dict[str, int]] = {}
    for alert_id, status, number in session.exec(
            select(AlertDelivery.alert_id, AlertDelivery.status, func.count())
            .where(col(AlertDelivery.alert_id).in_(alert_ids))
            .group_by(col(AlertDelivery.alert_id), col(AlertDelivery.status))).all():
        assert alert_id is not None  # only the deliveries of the given alerts
        key = "pending" if status in (DeliveryStatus.pending, DeliveryStatus.sending) else status
        counts.setdefault(alert_id, {}).setdefault(key, 0)
        counts[alert_id][key] += number
    return counts


def open_without_channel(*, session: Session, actor: Actor) -> int:
    """Open alerts of a notified level that no channel took: nobody was told."""
    require(actor, Capability.manage_alerts)
    has_delivery = select(AlertDelivery.id).where(col(AlertDelivery.alert_id) == CapacityAlert.id).exists()
    query = select(func.count()).select_from(CapacityAlert).where(
        col(CapacityAlert.closed_at).is_(None), col(CapacityAlert.notified).is_(True),
        col(CapacityAlert.last_notified_at).is_(None), ~has_delivery)
    if actor.branch_scope is not None:
        query = query.where(col(CapacityAlert.branch_id) == actor.branch_scope)
    return session.exec(query).one()


def acknowledge(*, session: Session, actor: Actor, alert_versions: dict[int, int],
                now: datetime | None = None) -> int:
    """Acknowledge the alerts as the operator saw them (id → version); all or
    nothing: one changed since it was shown fails the whole action."""
    require(actor, Capability.manage_alerts)
    if not alert_versions:
        raise InvalidInput("alerts.ack_nothing")
    now = now or utcnow()
    done = 0
    for alert_id, version in alert_versions.items():
        alert = session.get(CapacityAlert, alert_id)
        if alert is None or (actor.branch_scope is not None and alert.branch_id != actor.branch_scope):
            raise NotFound("alerts.not_found")
        if alert.acknowledged_at is not None:
            continue
        result = session.exec(update(CapacityAlert).where(col(CapacityAlert.id) == alert_id,
                                                          col(CapacityAlert.version) == version)
                              .values(acknowledged_at=now, acknowledged_by_id=actor.user_id,
                                      version=CapacityAlert.version + 1))
        if result.rowcount != 1:
            raise ConcurrentEdit()
        audit.record(session=session, actor=actor, action="capacity_alert.acknowledge", entity_type="capacity_alert",
                     entity_id=alert_id, branch_id=alert.branch_id, after={"level": alert.level})
        done += 1
    return done


@dataclass(frozen=True)
class DeliveryRow:
    delivery: AlertDelivery
    channel_name: str
    channel_kind: str


def list_deliveries(*, session: Session, actor: Actor, status: str | None = None, offset: int = 0,
                    limit: int = 50) -> tuple[list[DeliveryRow], int]:
    require(actor, Capability.manage_alerts)
    query = select(AlertDelivery, AlertChannel.name, AlertChannel.kind).join(
        AlertChannel, col(AlertChannel.id) == AlertDelivery.channel_id)
    count = select(func.count()).select_from(AlertDelivery).join(
        AlertChannel, col(AlertChannel.id) == AlertDelivery.channel_id)
    filters: list[ColumnElement[bool]] = []
    if status == DeliveryStatus.pending:
        # A message being sent right now is still waiting as far as an operator is concerned.
        filters.append(col(AlertDelivery.status).in_([DeliveryStatus.pending, DeliveryStatus.sending]))
    elif status:
        filters.append(col(AlertDelivery.status) == status)
    if actor.branch_scope is not None:
        filters.append(col(AlertChannel.branch_id) == actor.branch_scope)
    if filters:
        query, count = query.where(*filters), count.where(*filters)
    rows = session.exec(query.order_by(col(AlertDelivery.id).desc()).offset(offset).limit(limit)).all()
    return [DeliveryRow(d, name, kind) for d, name, kind in rows], session.exec(count).one()


def retry_deliveries(*, session: Session, actor: Actor, delivery_ids: list[int],
                     now: datetime | None = None) -> int:
    """Put failed deliveries back in the outbox for another 24 hours."""
    require(actor, Capability.manage_alerts)
    now = now or utcnow()
    for delivery_id in delivery_ids:
        delivery = session.get(AlertDelivery, delivery_id)
        if delivery is None:
            raise NotFound()
        channel = session.get(AlertChannel, delivery.channel_id)
        assert channel is not None  # the delivery's channel is a foreign key
        if actor.branch_scope is not None and channel.branch_id != actor.branch_scope:
            raise NotFound()
        if delivery.status != DeliveryStatus.failed:
            raise InvalidInput("alerts.not_failed")
        result = session.exec(update(AlertDelivery).where(col(AlertDelivery.id) == delivery_id,
                                                          col(AlertDelivery.version) == delivery.version)
                              .values(status=DeliveryStatus.pending, next_attempt_at=now, retry_until=now + RETRY_FOR,
                                      version=AlertDelivery.version + 1))
        if result.rowcount != 1:
            raise ConcurrentEdit()
        audit.record(session=session, actor=actor, action="alert_delivery.retry", entity_type="alert_delivery",
                     entity_id=delivery_id, branch_id=channel.branch_id)
    return len(delivery_ids)

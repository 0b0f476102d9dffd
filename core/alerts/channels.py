"""Alert channels: add, list with health, enable/disable, send a test message."""

from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit, InvalidInput, NotFound, PermissionDenied
from base.timeutil import utcnow
from core import audit
from core.alerts.outbox import SEND_TIMEOUT_SECONDS, record_send
from core.alerts.robots import RobotError, Target, send
from core.auth.permissions import Actor, Capability, require
from db.models import AlertChannel, AlertDelivery, Branch, ChannelKind, DeliveryStatus
from i18n import t


@dataclass(frozen=True)
class ChannelRow:
    channel: AlertChannel
    branch_code: str | None
    branch_name: str | None
    pending: int


def _branch_id(session: Session, code: str | None) -> int | None:
    code = (code or "").strip()
    if not code:
        return None
    branch = session.exec(select(Branch).where(Branch.code == code)).first()
    if branch is None:
        raise InvalidInput("alerts.channel.unknown_branch", code=code)
    return branch.id


def parse_url(url: str) -> httpx.URL:
    """The address as the sender will read it; refused here, when saved, rather
    than at every send (a port that is not a number, a host with spaces…)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidInput("alerts.channel.bad_url_reason", reason=str(exc)) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidInput("alerts.channel.bad_url")
    if any(char.isspace() for char in url) or "%" in parsed.host:
        raise InvalidInput("alerts.channel.bad_url_reason", reason=t("alerts.channel.bad_host"))
    return parsed


def add_channel(*, session: Session, actor: Actor, kind: str, url: str, secret: str | None = None,
                branch_code: str | None = None, name: str | None = None) -> AlertChannel:
    require(actor, Capability.manage_alerts)
    kind = (kind or "").strip().lower()
    if kind not in set(ChannelKind):
        raise InvalidInput("alerts.channel.bad_kind")
    url = (url or "").strip()
    parsed = parse_url(url)
    if kind == ChannelKind.wecom and ("webhook/send" not in parsed.path or not parsed.params.get("key")):
        raise InvalidInput("alerts.channel.url_kind_mismatch")
    name = (name or "").strip() or t(f"channel_kind.{kind}")
    if len(name) > 100:
        raise InvalidInput("alerts.channel.name_too_long")
    branch_id = _branch_id(session, branch_code)
    # A branch-scoped operator may only add channels for the own branch.
    require(actor, Capability.manage_alerts, branch_id=branch_id)
    if branch_id is None and actor.branch_scope is not None:
        raise PermissionDenied("error.branch_out_of_scope")
    channel = AlertChannel(name=name, kind=kind, url=url, secret=(secret or "").strip() or None, branch_id=branch_id)
    session.add(channel)
    session.flush()
    audit.record(session=session, actor=actor, action="alert_channel.add", entity_type="alert_channel",
                 entity_id=channel.id, branch_id=branch_id,
                 after={"name": name, "kind": kind, "branch_id": branch_id, "signed": bool(channel.secret)})
    return channel


def list_channels(*, session: Session, actor: Actor) -> list[ChannelRow]:
    require(actor, Capability.manage_alerts)
    pending = dict(session.exec(select(AlertDelivery.channel_id, func.count()).where(
        col(AlertDelivery.status).in_([DeliveryStatus.pending, DeliveryStatus.sending]))
        .group_by(AlertDelivery.channel_id)).all())
    query = select(AlertChannel, Branch.code, Branch.name).join(
        Branch, col(Branch.id) == AlertChannel.branch_id, isouter=True).order_by(AlertChannel.id)
    if actor.branch_scope is not None:
        query = query.where(col(AlertChannel.branch_id) == actor.branch_scope)
    return [ChannelRow(channel, code, name, pending.get(channel.id, 0))
            for channel, code, name in session.exec(query).all()]


def _get(session: Session, actor: Actor, channel_id: int) -> AlertChannel:
    require(actor, Capability.manage_alerts)
    channel = session.get(AlertChannel, channel_id)
    if channel is None:
        raise NotFound("alerts.channel.not_found")
    if actor.branch_scope is not None and channel.branch_id != actor.branch_scope:
        raise NotFound("alerts.channel.not_found")
    return channel


def set_enabled(*, session: Session, actor: Actor, channel_id: int, enabled: bool, version: int) -> None:
    channel = _get(session, actor, channel_id)
    result = session.exec(update(AlertChannel).where(col(AlertChannel.id) == channel_id,
                                                     col(AlertChannel.version) == version)
                          .values(enabled=enabled, version=AlertChannel.version + 1))
    if result.rowcount != 1:
        raise ConcurrentEdit()
    audit.record(session=session, actor=actor, action="alert_channel.enable" if enabled else "alert_channel.disable",
                 entity_type="alert_channel", entity_id=channel_id, branch_id=channel.branch_id,
                 before={"enabled": channel.enabled}, after={"enabled": enabled})


def send_test(*, session: Session, actor: Actor, channel_id: int, http: httpx.Client | None = None,
              now: datetime | None = None) -> None:
    """Send a test message now and record the channel's health; raises with the
    robot's reason when it fails. The message counts against the robot's rate."""
    channel = _get(session, actor, channel_id)
    now = now or utcnow()
    record_send(session=session, channel_id=channel_id, at=now)
    own = http is None
    http = http or httpx.Client(timeout=SEND_TIMEOUT_SECONDS)
    try:
        send(Target(channel.kind, channel.url, channel.secret), t("alerts.test_message", name=channel.name), http=http)
    except RobotError as exc:
        session.exec(update(AlertChannel).where(col(AlertChannel.id) == channel_id)
                     .values(last_error=exc.problem.encode(), last_error_at=now))
        session.commit()
        raise InvalidInput("alerts.channel.test_failed", reason=str(exc)) from None
    finally:
        if own:
            http.close()
    session.exec(update(AlertChannel).where(col(AlertChannel.id) == channel_id).values(last_success_at=now))


def robot_key(kind: str, url: str) -> str | None:
    """What identifies the robot in its address (WeCom's key, DingTalk's
    access_token, the last path part for Feishu and webhooks): how the demo
    inbox tells which channel a message went to."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    if kind == ChannelKind.wecom:
        return parsed.params.get("key")
    if kind == ChannelKind.dingtalk:
        return parsed.params.get("access_token")
    return parsed.path.rstrip("/").rsplit("/", 1)[-1] or None


def channel_names_by_robot(*, session: Session, actor: Actor) -> dict[tuple[str, str], str]:
    """(kind, robot key) → channel name, for the channels the actor may see."""
    names: dict[tuple[str, str], str] = {}
    for row in list_channels(session=session, actor=actor):
        key = robot_key(row.channel.kind, row.channel.url)
        if key:
            names[(row.channel.kind, key)] = row.channel.name
    return names

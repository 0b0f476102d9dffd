"""Alert channels: add, list with health, enable/disable, send a test message.
A channel is a group robot, a JSON webhook, or WeCom app messages to members (wecom_app)."""

from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from base.config import get_settings
from base.errors import ConcurrentEdit, InvalidInput, NotFound, PermissionDenied
from base.problems import Problem
from base.timeutil import utcnow
from core import audit
from core.alerts import app_messages
from core.alerts.destinations import check_destination
from core.alerts.outbox import SEND_TIMEOUT_SECONDS, record_send
from core.alerts.robots import RobotError, Target, send
from core.auth.permissions import Actor, Capability, require
from core.wecom.client import WeComClient, WeComError
from core.wecom.messages import send_textcard
from db.models import AlertChannel, AlertDelivery, Branch, ChannelKind, DeliveryStatus, Role
from i18n import error_text, t


@dataclass(frozen=True)
class ChannelRow:
    channel: AlertChannel
    branch_code: str | None
    branch_name: str | None
    pending: int
    # App messages: the members WeCom answered as invalid (unknown, departed, out of the app's scope).
    invalid_users: tuple[str, ...] = ()


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


def add_channel(*, session: Session, actor: Actor, kind: str, url: str = "", secret: str | None = None,
                branch_code: str | None = None, name: str | None = None, members: str | None = None,
                to_branch_managers: bool = False) -> AlertChannel:
    """A robot or webhook at `url`; or, for wecom_app, app messages to `members`
    ('|'-joined userids) and, with `to_branch_managers`, to the alert's branch managers."""
    require(actor, Capability.manage_alerts)
    kind = (kind or "").strip().lower()
    if kind not in set(ChannelKind):
        raise InvalidInput("alerts.channel.bad_kind")
    listed = app_messages.split_members(members)
    if kind == ChannelKind.wecom_app:
        if not get_settings().WECOM_AGENT_ID:
            raise InvalidInput("alerts.channel.app_not_configured")
        if bad := app_messages.invalid_members(listed):
            raise InvalidInput("alerts.channel.bad_member", members="、".join(bad))
        if not listed and not to_branch_managers:
            raise InvalidInput("alerts.channel.no_recipients")
        # Messages go through the self-built app's API, not to an address of the channel's own.
        url, secret = "", None
    else:
        if listed or to_branch_managers:
            raise InvalidInput("alerts.channel.members_app_only")
        url = (url or "").strip()
        parsed = parse_url(url)
        if kind == ChannelKind.wecom and ("webhook/send" not in parsed.path or not parsed.params.get("key")):
            raise InvalidInput("alerts.channel.url_kind_mismatch")
        # A generic webhook can point anywhere public; only HQ's administrator decides where.
        if kind == ChannelKind.webhook and actor.role != Role.hq_admin:
            raise PermissionDenied("alerts.channel.webhook_admin_only")
        check_destination(kind, url)
    name = (name or "").strip() or t(f"channel_kind.{kind}")
    if len(name) > 100:
        raise InvalidInput("alerts.channel.name_too_long")
    branch_id = _branch_id(session, branch_code)
    # A branch-scoped operator may only add channels for the own branch.
    require(actor, Capability.manage_alerts, branch_id=branch_id)
    if branch_id is None and actor.branch_scope is not None:
        raise PermissionDenied("error.branch_out_of_scope")
    channel = AlertChannel(name=name, kind=kind, url=url, secret=(secret or "").strip() or None, branch_id=branch_id,
                           recipients="|".join(listed) or None, to_branch_managers=to_branch_managers)
    session.add(channel)
    session.flush()
    assert channel.id is not None  # assigned by the flush
    after: dict[str, object] = {"name": name, "kind": kind, "branch_id": branch_id, "signed": bool(channel.secret)}
    if kind == ChannelKind.wecom_app:
        after.update(members=listed, to_branch_managers=to_branch_managers)
    audit.record(session=session, actor=actor, action="alert_channel.add", entity_type="alert_channel",
                 entity_id=channel.id, branch_id=branch_id, after=after)
    return channel


def list_channels(*, session: Session, actor: Actor) -> list[ChannelRow]:
    require(actor, Capability.manage_alerts)
    pending = dict(session.exec(select(AlertDelivery.channel_id, func.count()).where(
        col(AlertDelivery.status).in_([DeliveryStatus.pending, DeliveryStatus.sending]))
        .group_by(col(AlertDelivery.channel_id))).all())
    query = select(AlertChannel, Branch.code, Branch.name).join(
        Branch, col(Branch.id) == AlertChannel.branch_id, isouter=True).order_by(col(AlertChannel.id))
    if actor.branch_scope is not None:
        query = query.where(col(AlertChannel.branch_id) == actor.branch_scope)
    found = session.exec(query).all()
    invalid = app_messages.invalid_users(session=session, channel_ids=[
        channel.id for channel, _code, _name in found if channel.id is not None])
    rows: list[ChannelRow] = []
    for channel, code, name in found:
        assert channel.id is not None  # a loaded row has its key
        rows.append(ChannelRow(channel, code, name, pending.get(channel.id, 0),
                               tuple(invalid.get(channel.id, ()))))
    return rows


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
              now: datetime | None = None, wecom: WeComClient | None = None) -> tuple[str, ...]:
    """Send a test message now and record the channel's health; raises with the
    robot's reason when it fails. The message counts against the robot's rate
    (the members' windows for app messages). Answers the members WeCom called
    invalid (app messages; the others got it)."""
    channel = _get(session, actor, channel_id)
    now = now or utcnow()
    if channel.kind == ChannelKind.wecom_app:
        return _send_app_test(session, channel, now, wecom)
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
    return ()


def _send_app_test(session: Session, channel: AlertChannel, now: datetime,
                   wecom: WeComClient | None) -> tuple[str, ...]:
    """To the channel's members and, for a branch's channel sending to its managers, to them."""
    assert channel.id is not None  # a loaded row has its key
    members = app_messages.recipients_for(session=session, listed=channel.recipients,
                                          to_branch_managers=channel.to_branch_managers,
                                          branch_id=channel.branch_id, now=now)
    if not members:
        raise InvalidInput("alerts.channel.test_no_recipients")
    windows = app_messages.MemberWindows(session, members, now)
    if windows.free_at(members, now) is not None:
        raise InvalidInput("alerts.channel.test_paced")
    client = wecom or app_messages.app_client()
    if client is None:
        raise InvalidInput("alerts.channel.app_not_configured")
    windows.record(session, now, members)
    settings = get_settings()
    try:
        invalid = send_textcard(client, agent_id=settings.WECOM_AGENT_ID, touser=members,
                                title=t("alerts.app.title.test"),
                                description=t("alerts.test_message", name=channel.name),
                                url=settings.CONSOLE_BASE_URL.rstrip("/") + "/alert-settings",
                                btntxt=t("alerts.app.button")).invalid_users
    except WeComError as exc:
        if exc.errcode != app_messages.ALL_INVALID:
            error = app_messages.send_error(exc)
            _note_test_failure(session, channel.id, error.problem.encode(), now)
            raise InvalidInput("alerts.channel.test_failed", reason=str(error)) from None
        invalid = tuple(members)
    finally:
        if wecom is None:
            client.close()
    app_messages.note_answer(session=session, channel_id=channel.id, members=members, invalid=invalid, at=now)
    if {userid.lower() for userid in members} <= {userid.lower() for userid in invalid}:
        nobody = Problem("alerts.app.no_valid_member", {"members": ", ".join(members)})
        _note_test_failure(session, channel.id, nobody.encode(), now)
        raise InvalidInput("alerts.channel.test_failed", reason=error_text(nobody))
    session.exec(update(AlertChannel).where(col(AlertChannel.id) == channel.id).values(last_success_at=now))
    return invalid


def _note_test_failure(session: Session, channel_id: int, stored: str, at: datetime) -> None:
    """Kept although the caller's action fails: the channel's health shows it."""
    session.exec(update(AlertChannel).where(col(AlertChannel.id) == channel_id)
                 .values(last_error=stored, last_error_at=at))
    session.commit()


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


def app_members_in_view(*, session: Session, actor: Actor, now: datetime | None = None) -> set[str] | None:
    """The members (lower-case) whose app messages the actor may see in the demo
    inbox: those of the channels the actor manages; None for everyone's."""
    if actor.branch_scope is None:
        require(actor, Capability.manage_alerts)
        return None
    now = now or utcnow()
    members: set[str] = set()
    for row in list_channels(session=session, actor=actor):
        if row.channel.kind == ChannelKind.wecom_app:
            members.update(userid.lower() for userid in app_messages.recipients_for(
                session=session, listed=row.channel.recipients, to_branch_managers=row.channel.to_branch_managers,
                branch_id=row.channel.branch_id, now=now))
    return members

"""Alerts as WeCom app messages (channel kind wecom_app): who receives them,
each member's sending windows, the card, and the members WeCom called invalid.

WeCom drops silently what a member receives beyond 30 app messages a minute or
1,000 an hour. Every message handed over is recorded per member
(`member_message_send`), and a message whose members have no room left waits
for it instead of being sent into the void.
"""

import re
from bisect import insort
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from base.config import get_settings
from core.alerts.robots import RobotError
from core.directory.accounts import is_valid_userid
from core.wecom.client import RetryPolicy, WeComClient, WeComError
from db.models import AlertLevel, ChannelInvalidUser, MemberMessageSend, Role, User
from i18n import t

MEMBER_PER_MINUTE = 30
MEMBER_PER_HOUR = 1000
# WeCom counts a minute and an hour; two seconds more cover the gap between our
# clock (the send is recorded just before the request) and theirs.
MINUTE_WINDOW = timedelta(seconds=62)
HOUR_WINDOW = timedelta(hours=1, seconds=2)
# A resend after an unconfirmed send must not reach a member twice (WeCom's default interval).
DUPLICATE_CHECK_SECONDS = 1800
# The token and the send each within this, so that both fit in the outbox's claim margin.
REQUEST_TIMEOUT_SECONDS = 5.0
# The outbox retries with its own backoff; the client must not hold a claim for a minute of its own.
SINGLE_TRY = RetryPolicy(max_attempts=1)
# WeCom: "user & party & tag all invalid".
ALL_INVALID = 81013
_SEPARATORS = re.compile(r"[|,，、;；\s]+")


def split_members(text: str | None) -> list[str]:
    """The userids of a '|'-joined list (commas and spaces also separate), each
    once whatever its case (WeCom userids are case-insensitive)."""
    seen: set[str] = set()
    members: list[str] = []
    for userid in _SEPARATORS.split(text or ""):
        if userid and userid.lower() not in seen:
            seen.add(userid.lower())
            members.append(userid)
    return members


def invalid_members(members: list[str]) -> list[str]:
    return [userid for userid in members if not is_valid_userid(userid)]


def branch_managers(*, session: Session, branch_id: int, now: datetime) -> list[str]:
    """The WeCom members of the branch's managers who may use the console: linked, enabled, not expired."""
    return [userid for userid in session.exec(select(User.wecom_userid).where(
        col(User.role) == Role.branch_manager, col(User.branch_id) == branch_id, col(User.disabled).is_(False),
        col(User.wecom_userid).is_not(None), (col(User.expires_at).is_(None)) | (col(User.expires_at) > now))
        .order_by(col(User.id))).all() if userid]


def recipients_for(*, session: Session, listed: str | None, to_branch_managers: bool, branch_id: int | None,
                   now: datetime) -> list[str]:
    """A channel's listed members, and its managers of `branch_id` when it sends to them."""
    members = split_members(listed)
    if to_branch_managers and branch_id is not None:
        members = split_members("|".join(members + branch_managers(session=session, branch_id=branch_id, now=now)))
    return members


class MemberWindows:
    """Each member's app messages of the last hour, read once and kept up to date
    while a pass sends."""

    def __init__(self, session: Session, members: list[str], at: datetime) -> None:
        self.sent: dict[str, list[datetime]] = defaultdict(list)
        keys = sorted({userid.lower() for userid in members})
        if keys:
            rows = session.exec(select(MemberMessageSend.userid, MemberMessageSend.sent_at).where(
                col(MemberMessageSend.userid).in_(keys), col(MemberMessageSend.sent_at) > at - HOUR_WINDOW)
                .order_by(col(MemberMessageSend.sent_at))).all()
            for userid, sent_at in rows:
                self.sent[userid].append(sent_at)

    def free_at(self, members: list[str], at: datetime) -> datetime | None:
        """None when every member may receive one more message at `at`; else
        the moment all of them may."""
        free = at
        for userid in members:
            times = [sent for sent in self.sent.get(userid.lower(), []) if sent > at - HOUR_WINDOW]
            last_minute = [sent for sent in times if sent > at - MINUTE_WINDOW]
            if len(last_minute) >= MEMBER_PER_MINUTE:
                free = max(free, last_minute[len(last_minute) - MEMBER_PER_MINUTE] + MINUTE_WINDOW)
            if len(times) >= MEMBER_PER_HOUR:
                free = max(free, times[len(times) - MEMBER_PER_HOUR] + HOUR_WINDOW)
        return None if free == at else free

    def record(self, session: Session, at: datetime, members: list[str]) -> None:
        for userid in members:
            session.add(MemberMessageSend(userid=userid.lower(), sent_at=at))
            insort(self.sent[userid.lower()], at)


def forget_old_sends(*, session: Session, now: datetime) -> None:
    session.exec(delete(MemberMessageSend).where(col(MemberMessageSend.sent_at) < now - HOUR_WINDOW))


def card(level: str | None) -> tuple[str, str]:
    """The title and the console page the card's button opens, for an alert of this level."""
    base = get_settings().CONSOLE_BASE_URL.rstrip("/")
    if level == AlertLevel.member_left:
        return t("alerts.app.title.member_left"), f"{base}/accounts"
    if level in (AlertLevel.warn, AlertLevel.critical, AlertLevel.full):
        return t(f"alerts.app.title.{level}"), f"{base}/capacity"
    # A store's code: its row on 绑定审核 says why, and a branch manager may read it there.
    if level == AlertLevel.code_stale:
        return t("alerts.app.title.code_stale"), f"{base}/bindings"
    if level == AlertLevel.links_quota_low:
        return t("alerts.app.title.links_quota_low"), f"{base}/alerts"
    return t("alerts.app.title.other"), f"{base}/capacity"


def app_client() -> WeComClient | None:
    """A client for the self-built app, or None when it is not configured."""
    settings = get_settings()
    if not (settings.WECOM_CORP_ID and settings.WECOM_SECRET and settings.WECOM_AGENT_ID):
        return None
    return WeComClient(settings.WECOM_API_BASE, settings.WECOM_CORP_ID, settings.WECOM_SECRET,
                       timeout=REQUEST_TIMEOUT_SECONDS, retry=SINGLE_TRY)


def send_error(exc: WeComError) -> RobotError:
    """WeCom's refusal as the outbox keeps a channel's errors."""
    # Only a request that went out and lost its answer may have been delivered.
    maybe_delivered = exc.errcode is None and exc.errmsg.startswith(("ReadTimeout", "RemoteProtocolError"))
    return RobotError(exc.reason_key, maybe_delivered=maybe_delivered, errcode=str(exc.errcode), errmsg=exc.errmsg)


def note_answer(*, session: Session, channel_id: int, members: list[str], invalid: list[str] | tuple[str, ...],
                at: datetime) -> None:
    """Record the members WeCom called invalid, and forget those it now took."""
    invalid_keys = {userid.lower() for userid in invalid}
    valid = [userid.lower() for userid in members if userid.lower() not in invalid_keys]
    if valid:
        session.exec(delete(ChannelInvalidUser).where(col(ChannelInvalidUser.channel_id) == channel_id,
                                                      func.lower(col(ChannelInvalidUser.userid)).in_(valid)))
    for userid in invalid:
        row = session.exec(select(ChannelInvalidUser).where(
            col(ChannelInvalidUser.channel_id) == channel_id,
            func.lower(col(ChannelInvalidUser.userid)) == userid.lower())).first()
        if row is None:
            session.add(ChannelInvalidUser(channel_id=channel_id, userid=userid, first_seen_at=at, last_seen_at=at))
        else:
            row.last_seen_at = at
            row.times += 1
            session.add(row)


def invalid_users(*, session: Session, channel_ids: list[int]) -> dict[int, list[str]]:
    """channel id → the members WeCom last called invalid, in the order first seen."""
    found: dict[int, list[str]] = defaultdict(list)
    if channel_ids:
        for channel_id, userid in session.exec(select(ChannelInvalidUser.channel_id, ChannelInvalidUser.userid).where(
                col(ChannelInvalidUser.channel_id).in_(channel_ids))
                .order_by(col(ChannelInvalidUser.first_seen_at), col(ChannelInvalidUser.userid))).all():
            found[channel_id].append(userid)
    return dict(found)

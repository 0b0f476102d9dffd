"""Capacity monitoring: count snapshots, alerts (one row per account, level and
episode), alert channels (group robots), the delivery outbox and each robot's
recent sends (its rate window)."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, DateTime, Index, String, Text, text
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow

OPEN_EPISODE = text("closed_at IS NULL")


class AlertLevel(StrEnum):
    warn = "warn"
    critical = "critical"
    full = "full"
    # Not a capacity level: the account's member left or was disabled in WeCom
    # (an episode that opens once and is closed at once).
    member_left = "member_left"
    # Not capacity levels either: the store moved to its standby account (an
    # episode opened and closed at once), and a store at the switch level with
    # no standby able to take over (open until the store moves or usage falls).
    switched = "switched"
    no_standby = "no_standby"
    # Incidents, not about an account: a store's contact code still sends
    # customers to an account the store left (WeCom refused the update; names
    # the store), and the chain's 获客链接 quota running low (names nothing).
    code_stale = "code_stale"
    links_quota_low = "links_quota_low"


LEVEL_CHECK = ("level in ('warn', 'critical', 'full', 'member_left', 'switched', 'no_standby', "
               "'code_stale', 'links_quota_low')")


class ChannelKind(StrEnum):
    wecom = "wecom"
    dingtalk = "dingtalk"
    feishu = "feishu"
    webhook = "webhook"
    # WeCom app messages (message/send) to members, not a group robot.
    wecom_app = "wecom_app"


KIND_CHECK = "kind in ('wecom', 'dingtalk', 'feishu', 'webhook', 'wecom_app')"


class DeliveryStatus(StrEnum):
    pending = "pending"
    # Claimed by the sidecar and handed to the robot, answer not recorded yet.
    sending = "sending"
    sent = "sent"
    failed = "failed"


class CountSnapshot(SQLModel, table=True):
    """An account's customer count as one sync saw it (the trend and forecast)."""

    __tablename__ = "count_snapshot"
    __table_args__ = (Index("ix_count_snapshot_account_taken", "account_id", "taken_at"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    customer_count: int
    taken_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class AccountGrowth(SQLModel, table=True):
    """Each account's growth per day over the last 7 days, as last worked out from
    its snapshots (core.capacity.growth): the same for every user and slow to move,
    so kept for a few minutes instead of read again on every rerun of 容量监控."""

    __tablename__ = "account_growth"
    __table_args__ = (Index("ix_account_growth_computed", "computed_at"),)
    account_id: int = Field(foreign_key="account.id", primary_key=True)
    # None: too short a history to say anything about a day.
    growth_per_day: float | None = Field(default=None)
    computed_at: datetime = Field(sa_type=DateTime)


class CapacityAlert(SQLModel, table=True):
    """One episode of an account above a level: opened when usage crosses the
    level, closed when it falls far enough below it. At most one open episode
    per account and level (partial unique index).

    Incidents (code_stale, links_quota_low) live in the same log, so the alerts
    page is one list: they name a store (or nothing) instead of an account, have
    no count or limit, and say what happened in `detail`; at most one open
    episode per store and level."""

    __tablename__ = "capacity_alert"
    __table_args__ = (
        CheckConstraint(LEVEL_CHECK, name="ck_capacity_alert_level"),
        Index("uq_capacity_alert_open", "account_id", "level", unique=True,
              sqlite_where=OPEN_EPISODE, postgresql_where=OPEN_EPISODE),
        Index("uq_capacity_alert_open_store", "store_id", "level", unique=True,
              sqlite_where=OPEN_EPISODE, postgresql_where=OPEN_EPISODE),
        Index("ix_capacity_alert_opened", "opened_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    account_id: int | None = Field(default=None, foreign_key="account.id")
    store_id: int | None = Field(default=None, foreign_key="store.id")
    level: str = Field(max_length=16)
    level_pct: int
    branch_id: int | None = Field(default=None, foreign_key="branch.id")
    customer_count: int | None = Field(default=None)
    capacity_limit: int | None = Field(default=None)
    # An incident's account of what happened, as key + params (base.problems).
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    opened_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    closed_at: datetime | None = Field(default=None, sa_type=DateTime)
    # False when a jump across several levels notified only the highest one.
    notified: bool = Field(default=True)
    last_notified_at: datetime | None = Field(default=None, sa_type=DateTime)
    notify_count: int = Field(default=0)
    acknowledged_at: datetime | None = Field(default=None, sa_type=DateTime)
    acknowledged_by_id: int | None = Field(default=None, foreign_key="user.id")
    version: int = Field(default=1)


class AlertChannel(SQLModel, table=True):
    """A group robot, or WeCom app messages to members (wecom_app); without a branch it receives every alert."""

    __tablename__ = "alert_channel"
    __table_args__ = (
        CheckConstraint(KIND_CHECK, name="ck_alert_channel_kind"),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    kind: str = Field(max_length=16)
    url: str = Field(sa_column=Column(Text, nullable=False))
    secret: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    branch_id: int | None = Field(default=None, foreign_key="branch.id")
    # wecom_app only: the members it always messages ('|'-joined userids), and
    # whether the alert's branch managers (linked, enabled) get it too.
    recipients: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    to_branch_managers: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    enabled: bool = Field(default=True)
    last_success_at: datetime | None = Field(default=None, sa_type=DateTime)
    last_error_at: datetime | None = Field(default=None, sa_type=DateTime)
    # Why the robot last refused or failed, as key + params (base.problems).
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class AlertDelivery(SQLModel, table=True):
    """The outbox: one message for one channel, written in the same transaction
    as its alert and sent later, so that nothing is lost when a robot is down."""

    __tablename__ = "alert_delivery"
    __table_args__ = (
        CheckConstraint("status in ('pending', 'sending', 'sent', 'failed')", name="ck_alert_delivery_status"),
        Index("ix_alert_delivery_due", "status", "next_attempt_at"),
        Index("ix_alert_delivery_alert", "alert_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int | None = Field(default=None, foreign_key="capacity_alert.id")
    channel_id: int = Field(foreign_key="alert_channel.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
    # wecom_app only: the members this message goes to, fixed when it is queued.
    recipients: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(default=DeliveryStatus.pending, max_length=16)
    attempts: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    # Retried until then; an operator's "retry" moves it.
    retry_until: datetime = Field(sa_type=DateTime)
    sent_at: datetime | None = Field(default=None, sa_type=DateTime)
    # How many messages went out together in the digest that carried this one.
    digest_size: int | None = Field(default=None)
    # Why the last send failed or is held back, as key + params (base.problems).
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Set when claimed for sending: which sidecar (holder#lease generation) and when.
    claimed_at: datetime | None = Field(default=None, sa_type=DateTime)
    claim_token: str | None = Field(default=None, max_length=160)
    # Sends whose outcome is unknown (the robot's reply was lost, or the sidecar
    # died mid-send) and that were sent again: the group may have seen it twice.
    uncertain_sends: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    version: int = Field(default=1)


class RobotSend(SQLModel, table=True):
    """One message handed to a robot, kept for an hour: the robot's sliding
    one-minute rate window, shared by every sidecar and the console's test sends."""

    __tablename__ = "robot_send"
    __table_args__ = (Index("ix_robot_send_channel_at", "channel_id", "sent_at"),)
    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="alert_channel.id")
    sent_at: datetime = Field(sa_type=DateTime)


class MemberMessageSend(SQLModel, table=True):
    """One app message handed to WeCom for one member, kept for an hour: the
    member's sliding windows (30 a minute, 1,000 an hour; WeCom drops the excess silently)."""

    __tablename__ = "member_message_send"
    __table_args__ = (Index("ix_member_message_send_userid_at", "userid", "sent_at"),)
    id: int | None = Field(default=None, primary_key=True)
    userid: str = Field(sa_column=Column(String(64), nullable=False))
    sent_at: datetime = Field(sa_type=DateTime)


class ChannelInvalidUser(SQLModel, table=True):
    """A member an app-message channel named that WeCom answered as `invaliduser`."""

    __tablename__ = "channel_invalid_user"
    channel_id: int = Field(foreign_key="alert_channel.id", primary_key=True)
    userid: str = Field(sa_column=Column(String(64), primary_key=True))
    first_seen_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    times: int = Field(default=1)

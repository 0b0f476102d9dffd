"""Tracking events (埋点), WeCom contact events, and the funnel tables derived
from them.

`day` columns are day numbers (days since 1970-01-01) of the calendar day,
cut at local midnight in the zone FunnelState records (CONSOLE_TIMEZONE when
the first fact was kept; `python -m console rebuild-funnel` recuts them after
the setting changes); integers make day arithmetic the same on SQLite and
PostgreSQL.
"""

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, PrimaryKeyConstraint, String
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class TrackingEvent(SQLModel, table=True):
    """One client event as received; a resend (same event_id) is not stored twice."""

    __tablename__ = "tracking_event"
    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True, autoincrement=True))
    event_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    event: str = Field(max_length=24)
    occurred_at: datetime = Field(sa_type=DateTime)
    day: int
    user_key: str = Field(max_length=128)
    store_id: int = Field(foreign_key="store.id")
    # The store's branch when the event was received, for the record; the
    # figures follow the store's current branch (see FunnelActivity).
    branch_id: int
    platform: str = Field(max_length=16)
    order_id: str | None = Field(default=None, max_length=64)
    source: str = Field(default="api", max_length=16)
    received_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class ContactEvent(SQLModel, table=True):
    """A WeCom `change_external_contact` callback: a customer added or deleted."""

    __tablename__ = "contact_event"
    __table_args__ = (
        Index("ix_contact_event_store_at", "store_id", "occurred_at"),
        Index("ix_contact_event_external", "external_userid"),
    )
    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True, autoincrement=True))
    # SHA-256 of the callback's identifying fields: WeCom's retries share it.
    dedupe_key: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    change_type: str = Field(max_length=32)
    corp_id: str = Field(default="", max_length=64)
    userid: str = Field(max_length=64)
    external_userid: str = Field(max_length=128)
    state: str = Field(default="", max_length=64)
    occurred_at: datetime = Field(sa_type=DateTime)
    account_id: int | None = Field(default=None, foreign_key="account.id")
    # The store named by State, else the one whose binding was current for the
    # account then; branch_id is that store's branch at receipt, for the record.
    store_id: int | None = Field(default=None, foreign_key="store.id")
    branch_id: int | None = None
    received_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class FunnelActivity(SQLModel, table=True):
    """A user reached a funnel step at a store on a platform on a day: the set
    the distinct-user counts are made of. `added` (and `added_by_state`, the
    adds a channel code's State attributed) rows carry the external contact as
    the user and an empty platform (WeCom does not say which). `branch_id` is
    the branch the roll-up files the fact under: the store's current branch
    once the roll-up has caught up with a move (FunnelStoreBranch)."""

    __tablename__ = "funnel_activity"
    __table_args__ = (
        PrimaryKeyConstraint("step", "user_key", "day", "store_id", "platform", name="pk_funnel_activity"),
        # Covers the store figures and the drill-down (no table reads).
        Index("ix_funnel_activity_store_day_user", "store_id", "day", "step", "user_key", "platform"),
        # Covers the store ranking: one step's facts store by store, each store's users in order.
        Index("ix_funnel_activity_step_store_user", "step", "store_id", "user_key", "day", "platform"),
    )
    step: str = Field(sa_column=Column(String(24), nullable=False))
    user_key: str = Field(sa_column=Column(String(128), nullable=False))
    day: int = Field(sa_column=Column(Integer, nullable=False))
    store_id: int = Field(sa_column=Column(Integer, nullable=False))
    platform: str = Field(sa_column=Column(String(16), nullable=False))
    branch_id: int = Field(sa_column=Column(Integer, nullable=False))


class FunnelPending(SQLModel, table=True):
    """A fact in funnel_activity the roll-up has not taken in yet. Intake adds
    it in the same transaction as the fact; the roll-up removes exactly the
    rows it took in, so a fact that arrives meanwhile waits for the next run."""

    __tablename__ = "funnel_pending"
    __table_args__ = (
        PrimaryKeyConstraint("step", "user_key", "day", "store_id", "platform", name="pk_funnel_pending"),
    )
    step: str = Field(sa_column=Column(String(24), nullable=False))
    user_key: str = Field(sa_column=Column(String(128), nullable=False))
    day: int = Field(sa_column=Column(Integer, nullable=False))
    store_id: int = Field(sa_column=Column(Integer, nullable=False))
    platform: str = Field(sa_column=Column(String(16), nullable=False))


class FunnelRollup(SQLModel, table=True):
    """Distinct users per (platform, branch, step, day), split by how many days
    before that day the same user was last seen in the same scope (`gap`,
    capped). A range [a, b] counts each user once, on their first day in it:
    the rows with day in [a, b] and gap > day − a. `branch_id` 0 is the whole
    chain and platform "*" all platforms, each with its own distinct users.
    Always equal to what the facts not pending give (core.funnel.rollup)."""

    __tablename__ = "funnel_rollup"
    __table_args__ = (
        PrimaryKeyConstraint("platform", "branch_id", "step", "day", "gap", name="pk_funnel_rollup"),
    )
    platform: str = Field(sa_column=Column(String(16), nullable=False))
    branch_id: int = Field(sa_column=Column(Integer, nullable=False))
    step: str = Field(sa_column=Column(String(24), nullable=False))
    day: int = Field(sa_column=Column(Integer, nullable=False))
    gap: int = Field(sa_column=Column(Integer, nullable=False))
    users: int = Field(sa_column=Column(Integer, nullable=False))


class FunnelStoreBranch(SQLModel, table=True):
    """The branch a store's facts are filed under in the roll-up. When the
    store's current branch differs (it moved), the roll-up moves its whole
    history to the new branch."""

    __tablename__ = "funnel_store_branch"
    store_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    branch_id: int = Field(sa_column=Column(Integer, nullable=False))


class FunnelState(SQLModel, table=True):
    """One row: the time zone the stored days are cut in."""

    __tablename__ = "funnel_state"
    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    zone: str = Field(sa_column=Column(String(64), nullable=False))

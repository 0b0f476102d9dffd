"""Store contact codes (门店活码): one WeCom 「联系我」 contact way per store."""

from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, Text
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow

# WeCom refuses a longer state; the column cannot hold one either.
STATE_MAX = 30


class ContactCode(SQLModel, table=True):
    """A store's contact way as the console last confirmed it in WeCom.

    `userid` is the member WeCom serves behind the code (not the binding's
    wish): comparing it with the store's account finds codes still to update.
    `pending_since` is written and committed before `add_contact_way` is sent
    and cleared with its answer, so a sidecar killed in between looks for the
    way it may have made (by state) before making another."""

    __tablename__ = "contact_code"
    id: int | None = Field(default=None, primary_key=True)
    store_id: int = Field(sa_column=Column(Integer, ForeignKey("store.id"), nullable=False, unique=True))
    state: str = Field(sa_column=Column(String(STATE_MAX), nullable=False, unique=True))
    config_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True, unique=True))
    qr_code: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    userid: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    # 获客链接 (customer acquisition link) of the store, when HQ turned links on.
    link_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    link_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    link_userid: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    # Why WeCom last refused the link (create/update/delete), as key + params.
    link_problem: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Set (committed) before `create_link` is sent, cleared with its answer: a
    # sidecar killed in between finds the link it made instead of making another.
    link_pending_since: datetime | None = Field(default=None, sa_type=DateTime)
    # Why WeCom last refused this code, as key + params (base.problems).
    problem: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    pending_since: datetime | None = Field(default=None, sa_type=DateTime)
    # When the alert for the current stale episode (the code still sends
    # customers to an account that is no longer the store's) was queued.
    stale_alerted_at: datetime | None = Field(default=None, sa_type=DateTime)
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    # Last daily reconciliation against get_contact_way.
    checked_at: datetime | None = Field(default=None, sa_type=DateTime)

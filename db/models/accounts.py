"""企微账号: a WeCom member that serves a store's customers."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, DateTime, Index, String, Text, func
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow
from db.typed import table_of


class AccountStatus(StrEnum):
    active = "active"
    standby = "standby"
    disabled = "disabled"


class AccountBase(SQLModel):
    userid: str = Field(sa_column=Column(String(64), nullable=False))
    name: str = Field(default="", max_length=100)
    capacity_limit: int = Field(default=5000)
    status: str = Field(default=AccountStatus.active, max_length=16)


class Account(AccountBase, table=True):
    __table_args__ = (
        CheckConstraint("status in ('active', 'standby', 'disabled')", name="ck_account_status"),
        CheckConstraint("capacity_limit > 0", name="ck_account_capacity_limit"),
        CheckConstraint("customer_count >= 0", name="ck_account_customer_count"),
    )
    id: int | None = Field(default=None, primary_key=True)
    customer_count: int = Field(default=0)
    count_synced_at: datetime | None = Field(default=None, sa_type=DateTime)
    # The last WeCom error for this account: an operator reason as key + params (base.problems).
    sync_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The member's status in WeCom as the member sync or a change_contact callback
    # last saw it (1 active, 2 disabled, 4 not activated, 5 left), and why the
    # account was disabled when WeCom disabled it (base.problems key + params).
    member_status: int | None = Field(default=None)
    member_checked_at: datetime | None = Field(default=None, sa_type=DateTime)
    status_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


# userid is case-insensitive unique, as in WeCom.
Index("uq_account_userid_ci", func.lower(table_of(Account).c.userid), unique=True)

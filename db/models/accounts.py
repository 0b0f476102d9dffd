"""企微账号: a WeCom member that serves a store's customers."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, DateTime, Index, String, Text, func
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow


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
    # The last WeCom error for this account, in words an operator can act on.
    sync_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


# userid is case-insensitive unique, as in WeCom.
Index("uq_account_userid_ci", func.lower(Account.__table__.c.userid), unique=True)

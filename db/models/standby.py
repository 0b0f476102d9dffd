"""Standby accounts (备用号) reserved for a store, and the store's account switches.

A standby account is reserved for one store (the unique account_id); the store
moves to the first one that can take over when its current account reaches the
switch level, its member leaves, or an operator replaces the account (换号).
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, DateTime, Index
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow


class SwitchReason(StrEnum):
    capacity = "capacity"        # the sidecar: the current account reached the switch level
    member_left = "member_left"  # the current account's member left or was disabled in WeCom
    replaced = "replaced"        # an operator's 换号 on the bindings page


class StandbyAccount(SQLModel, table=True):
    __tablename__ = "standby_account"
    __table_args__ = (
        Index("uq_standby_account_account", "account_id", unique=True),
        Index("ix_standby_account_store", "store_id", "position"),
    )
    id: int | None = Field(default=None, primary_key=True)
    store_id: int = Field(foreign_key="store.id")
    account_id: int = Field(foreign_key="account.id")
    # The order the store takes its standby accounts in (lowest first).
    position: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    created_by_id: int | None = Field(default=None, foreign_key="user.id")


class AccountSwitch(SQLModel, table=True):
    """One move of a store from one account to another (the bindings page's switch history)."""

    __tablename__ = "account_switch"
    __table_args__ = (
        CheckConstraint("reason in ('capacity', 'member_left', 'replaced')", name="ck_account_switch_reason"),
        Index("ix_account_switch_store", "store_id", "switched_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    store_id: int = Field(foreign_key="store.id")
    from_account_id: int = Field(foreign_key="account.id")
    to_account_id: int = Field(foreign_key="account.id")
    from_binding_id: int = Field(foreign_key="binding.id")
    to_binding_id: int = Field(foreign_key="binding.id")
    reason: str = Field(max_length=16)
    # The old account's usage when the store moved (customers ÷ limit, percent).
    usage_pct: float = Field(default=0.0)
    customer_count: int = Field(default=0)
    capacity_limit: int = Field(default=0)
    # Who switched: a console user, or null for the sidecar (actor_name says which).
    actor_id: int | None = Field(default=None, foreign_key="user.id")
    actor_name: str = Field(default="", max_length=64)
    alert_id: int | None = Field(default=None, foreign_key="capacity_alert.id")
    switched_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)

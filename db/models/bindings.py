"""Store ↔ account bindings, with history.

The database enforces the business rules: a store has at most one current
binding and an account is current for at most one store (partial unique
indexes on the rows whose `ended_at` is null).
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, DateTime, Index, text
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow

CURRENT = text("ended_at IS NULL")


class BindingEndReason(StrEnum):
    replaced = "replaced"
    unbound = "unbound"
    store_closed = "store_closed"
    account_disabled = "account_disabled"


class BindingBase(SQLModel):
    store_id: int = Field(foreign_key="store.id")
    account_id: int = Field(foreign_key="account.id")


class Binding(BindingBase, table=True):
    __table_args__ = (
        Index("uq_binding_current_store", "store_id", unique=True,
              sqlite_where=CURRENT, postgresql_where=CURRENT),
        Index("uq_binding_current_account", "account_id", unique=True,
              sqlite_where=CURRENT, postgresql_where=CURRENT),
        Index("ix_binding_store", "store_id"),
        Index("ix_binding_account", "account_id"),
        CheckConstraint(
            "(ended_at IS NULL AND end_reason IS NULL) OR "
            "(ended_at IS NOT NULL AND end_reason IN "
            "('replaced', 'unbound', 'store_closed', 'account_disabled'))",
            name="ck_binding_end",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    # A new binding starts hidden (绑定后默认不显示) until HQ has checked it.
    shown: bool = Field(default=False)
    started_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    created_by_id: int | None = Field(default=None, foreign_key="user.id")
    reviewed_at: datetime | None = Field(default=None, sa_type=DateTime)
    reviewed_by_id: int | None = Field(default=None, foreign_key="user.id")
    ended_at: datetime | None = Field(default=None, sa_type=DateTime)
    end_reason: str | None = Field(default=None, max_length=32)
    ended_by_id: int | None = Field(default=None, foreign_key="user.id")
    version: int = Field(default=1)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)

"""HQ → branch (分公司) → store (门店)."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, DateTime, Index, String
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow


class StoreStatus(StrEnum):
    open = "open"
    closed = "closed"


class BranchBase(SQLModel):
    code: str = Field(sa_column=Column(String(32), nullable=False, unique=True))
    name: str = Field(max_length=100)


class Branch(BranchBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class StoreBase(SQLModel):
    # A CRM store ID is text: "000123" and "123" are two stores.
    crm_store_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    name: str = Field(max_length=200)
    branch_id: int = Field(foreign_key="branch.id", index=True)
    status: str = Field(default=StoreStatus.open, max_length=16)


class Store(StoreBase, table=True):
    __table_args__ = (
        CheckConstraint("status in ('open', 'closed')", name="ck_store_status"),
        Index("ix_store_branch_status", "branch_id", "status"),
        Index("ix_store_name", "name"),
    )
    id: int | None = Field(default=None, primary_key=True)
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)

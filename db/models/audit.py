"""Who did what to which entity, with the state before and after."""

from datetime import datetime

from sqlalchemy import Column, DateTime, Index, Text
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ix_audit_entity", "entity_type", "entity_id"),
        Index("ix_audit_branch_at", "branch_id", "at"),
        Index("ix_audit_action_at", "action", "at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    actor_user_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    # The username at the time, or a machine actor such as "cli" or "scheduler".
    actor_name: str = Field(max_length=64)
    action: str = Field(max_length=64)
    entity_type: str = Field(max_length=32)
    entity_id: str = Field(max_length=64)
    # The branch the entity belongs to, so branch managers can read their own.
    branch_id: int | None = Field(default=None, foreign_key="branch.id")
    before_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    after_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))

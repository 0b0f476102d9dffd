"""Settings changed in the console; they override the environment defaults."""

from datetime import datetime

from sqlalchemy import Column, DateTime, String, Text
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow


class SettingOverride(SQLModel, table=True):
    __tablename__ = "setting"
    key: str = Field(sa_column=Column(String(64), primary_key=True))
    value_json: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    updated_by_id: int | None = Field(default=None, foreign_key="user.id")

"""What WeCom says about departed members: their customers awaiting transfer."""

from datetime import datetime

from sqlalchemy import Column, DateTime, String
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow


class UnassignedCustomer(SQLModel, table=True):
    """One customer of a departed member awaiting transfer
    (`externalcontact/get_unassigned_list`), as the member sync last read it."""

    __tablename__ = "unassigned_customer"
    handover_userid: str = Field(sa_column=Column(String(64), primary_key=True))
    external_userid: str = Field(sa_column=Column(String(64), primary_key=True))
    dimission_time: datetime | None = Field(default=None, sa_type=DateTime)
    synced_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)

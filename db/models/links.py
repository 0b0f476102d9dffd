"""获客链接 (customer acquisition links): the corp's quota as last read, and each
store link's daily figures from WeCom. The link itself sits on the store's
contact code (contact_code.link_id/link_url/link_userid).

`day` is a day number (days since 1970-01-01) cut at midnight in CONSOLE_TIMEZONE,
like the funnel's days.
"""

from datetime import datetime

from sqlalchemy import Column, DateTime, Index, Text
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow


class AcquisitionQuota(SQLModel, table=True):
    """The corp's 获客链接 quota (`customer_acquisition_quota`); one row, id 1."""

    __tablename__ = "acquisition_quota"
    id: int | None = Field(default=None, primary_key=True)
    total: int | None = Field(default=None)
    balance: int | None = Field(default=None)
    read_at: datetime | None = Field(default=None, sa_type=DateTime)
    # When the low-balance alert of the current episode was queued; cleared once the balance is back.
    low_alerted_at: datetime | None = Field(default=None, sa_type=DateTime)
    # Why the last read failed, as key + params (base.problems).
    problem: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The last day whose link figures were pulled for every link.
    statistics_through: int | None = Field(default=None)


class LinkStatistic(SQLModel, table=True):
    """One link's figures on one day, as `customer_acquisition/statistic` gave them."""

    __tablename__ = "link_statistic"
    __table_args__ = (
        Index("uq_link_statistic_link_day", "link_id", "day", unique=True),
        Index("ix_link_statistic_store_day", "store_id", "day"),
    )
    id: int | None = Field(default=None, primary_key=True)
    store_id: int = Field(foreign_key="store.id")
    link_id: str = Field(max_length=64)
    day: int
    clicks: int = Field(default=0)
    new_customers: int = Field(default=0)
    fetched_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)

"""Times are stored as naive UTC (the same on SQLite and PostgreSQL) and shown in
CONSOLE_TIMEZONE."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from base.config import get_settings


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def display_zone() -> ZoneInfo:
    return ZoneInfo(get_settings().CONSOLE_TIMEZONE)


def to_display(value: datetime | None) -> datetime | None:
    """A stored naive-UTC time as an aware time in the display zone."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC).astimezone(display_zone())


def format_display(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    shown = to_display(value)
    return shown.strftime(fmt) if shown else ""


def to_storage(value: datetime) -> datetime:
    """An aware time as naive UTC; a naive time is taken to be in the display zone."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=display_zone())
    return value.astimezone(UTC).replace(tzinfo=None)

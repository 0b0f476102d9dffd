"""Tracking events (埋点): validation, idempotent intake, and event files.

Each event is checked on its own: bad ones are rejected with their index and
reason, good ones kept. A resend (same `event_id`) is a duplicate, never a new
event, also when two requests race (INSERT … ON CONFLICT DO NOTHING). Every
new funnel fact lands in `funnel_activity` in the same transaction and marks
its day for the roll-up.
"""

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Table
from sqlmodel import Session, col, select

from core.errors import InvalidInput
from core.permissions import Actor, Capability, require
from core.timeutil import display_zone, utcnow
from db.models import FunnelActivity, FunnelDirtyDay, Store, TrackingEvent

EVENT_NAMES = ("order_result_view", "entry_click", "guide_view", "add_click", "jump_fail")
# The funnel, in order; `added` comes from the WeCom callback, not from clients.
FUNNEL_STEPS = ("order_result_view", "entry_click", "guide_view", "add_click", "added")
PLATFORMS = ("app", "miniprogram", "h5")
MAX_BATCH = 1000
MAX_EVENT_ID = 64
MAX_USER_KEY = 128
MAX_ORDER_ID = 64
# A client clock may run a little fast; beyond this an event is from the future.
FUTURE_TOLERANCE = timedelta(hours=1)
OLDEST = timedelta(days=730)
EPOCH = date(1970, 1, 1)
FILE_COLUMNS = ("event", "event_id", "occurred_at", "user_key", "crm_store_id", "platform", "order_id")
MAX_FILE_BYTES = 200 * 1024 * 1024

# English for the API answer and logs; the console shows the catalog's Chinese.
PROBLEM_TEXT = {
    "events.not_object": "event is not a JSON object",
    "events.bad_event_id": "event_id must be text of 1-64 characters",
    "events.unknown_name": "unknown event name {value!r}",
    "events.bad_time": "occurred_at is not an ISO 8601 time",
    "events.no_offset": "occurred_at has no UTC offset",
    "events.future_time": "occurred_at is in the future",
    "events.too_old": "occurred_at is older than two years",
    "events.bad_user_key": "user_key must be text of 1-128 characters",
    "events.store_id_not_text": "crm_store_id must be a string (leading zeros matter)",
    "events.unknown_store": "unknown crm_store_id {value!r}",
    "events.unknown_platform": "unknown platform {value!r} (app, miniprogram or h5)",
    "events.bad_order_id": "order_id must be text of at most 64 characters",
}


def describe_problem(key: str, params: dict[str, Any]) -> str:
    return PROBLEM_TEXT[key].format(**params)


def day_number(moment: datetime) -> int:
    """The day (days since 1970-01-01) of an aware time, cut at midnight in the display zone."""
    return (moment.astimezone(display_zone()).date() - EPOCH).days


def day_of(number: int) -> date:
    return EPOCH + timedelta(days=number)


def number_of(day: date) -> int:
    return (day - EPOCH).days


@dataclass
class IntakeResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)  # (index, key, params)

    def merge(self, other: "IntakeResult", offset: int = 0) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected.extend((index + offset, key, params) for index, key, params in other.rejected)


@dataclass(frozen=True)
class _Checked:
    event_id: str
    event: str
    occurred_at: datetime  # aware
    user_key: str
    crm_store_id: str
    platform: str
    order_id: str | None


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= limit else None


def _check(raw: Any, now: datetime) -> _Checked | tuple[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        return "events.not_object", {}
    event_id = _text(raw.get("event_id"), MAX_EVENT_ID)
    if event_id is None:
        return "events.bad_event_id", {}
    name = raw.get("event")
    if name not in EVENT_NAMES:
        return "events.unknown_name", {"value": str(name)[:40]}
    when = raw.get("occurred_at")
    if not isinstance(when, str):
        return "events.bad_time", {}
    try:
        moment = datetime.fromisoformat(when.strip())
    except ValueError:
        return "events.bad_time", {}
    if moment.tzinfo is None or moment.utcoffset() is None:
        return "events.no_offset", {}
    if moment > now + FUTURE_TOLERANCE:
        return "events.future_time", {}
    if moment < now - OLDEST:
        return "events.too_old", {}
    user_key = _text(raw.get("user_key"), MAX_USER_KEY)
    if user_key is None:
        return "events.bad_user_key", {}
    store = raw.get("crm_store_id")
    if not isinstance(store, str):
        return "events.store_id_not_text", {}
    platform = raw.get("platform")
    if platform not in PLATFORMS:
        return "events.unknown_platform", {"value": str(platform)[:40]}
    order_id = raw.get("order_id")
    if order_id in (None, ""):
        order_id = None
    elif _text(order_id, MAX_ORDER_ID) is None:
        return "events.bad_order_id", {}
    else:
        order_id = order_id.strip()
    return _Checked(event_id, name, moment, user_key, store.strip(), platform, order_id)


def dialect_insert(session: Session, table: Table):
    """INSERT with ON CONFLICT for the engine's dialect (SQLite or PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def record_activity(*, session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Add funnel facts (step, user_key, day, store_id, platform, branch_id);
    those already known are ignored. Days that gained a fact are marked for the
    roll-up. Returns how many facts were new."""
    unique = list({(r["step"], r["user_key"], r["day"], r["store_id"], r["platform"]): r for r in rows}.values())
    if not unique:
        return 0
    table = FunnelActivity.__table__
    stmt = dialect_insert(session, table).on_conflict_do_nothing().returning(table.c.day)
    new_days = [row[0] for row in session.connection().execute(stmt, unique)]
    mark_days_dirty(session=session, days=set(new_days))
    return len(new_days)


def mark_days_dirty(*, session: Session, days: Iterable[int]) -> None:
    table = FunnelDirtyDay.__table__
    for day in sorted(days):
        stmt = dialect_insert(session, table).values(day=day, version=1)
        stmt = stmt.on_conflict_do_update(index_elements=[table.c.day], set_={"version": table.c.version + 1})
        session.connection().execute(stmt)


def _store_lookup(session: Session, crm_ids: set[str]) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    ids = sorted(crm_ids)
    for start in range(0, len(ids), 900):
        rows = session.exec(select(Store.crm_store_id, Store.id, Store.branch_id)
                            .where(col(Store.crm_store_id).in_(ids[start:start + 900]))).all()
        found.update({crm: (store_id, branch_id) for crm, store_id, branch_id in rows})
    return found


def ingest_events(*, session: Session, actor: Actor, events: Sequence[Any], source: str = "api") -> IntakeResult:
    """Check and keep up to MAX_BATCH events. The caller commits."""
    require(actor, Capability.import_events)
    if len(events) > MAX_BATCH:
        raise InvalidInput("events.batch_too_large", limit=MAX_BATCH)
    now = datetime.now(display_zone())
    result = IntakeResult()
    checked: list[tuple[int, _Checked]] = []
    for index, raw in enumerate(events):
        outcome = _check(raw, now)
        if isinstance(outcome, tuple):
            result.rejected.append((index, *outcome))
        else:
            checked.append((index, outcome))
    stores = _store_lookup(session, {c.crm_store_id for _, c in checked})
    rows: dict[str, dict[str, Any]] = {}
    for index, event in checked:
        store = stores.get(event.crm_store_id)
        if store is None:
            result.rejected.append((index, "events.unknown_store", {"value": event.crm_store_id[:64]}))
            continue
        if event.event_id in rows:
            result.duplicates += 1
            continue
        rows[event.event_id] = {
            "event_id": event.event_id, "event": event.event,
            "occurred_at": event.occurred_at.astimezone(UTC).replace(tzinfo=None),
            "day": day_number(event.occurred_at), "user_key": event.user_key, "store_id": store[0],
            "branch_id": store[1], "platform": event.platform, "order_id": event.order_id, "source": source,
            "received_at": utcnow(),
        }
    result.rejected.sort()
    if not rows:
        return result
    table = TrackingEvent.__table__
    stmt = dialect_insert(session, table).on_conflict_do_nothing(index_elements=[table.c.event_id]) \
        .returning(table.c.event_id)
    inserted = {row[0] for row in session.connection().execute(stmt, list(rows.values()))}
    result.accepted = len(inserted)
    result.duplicates += len(rows) - len(inserted)
    record_activity(session=session, rows=(
        {"step": r["event"], "user_key": r["user_key"], "day": r["day"], "store_id": r["store_id"],
         "platform": r["platform"], "branch_id": r["branch_id"]}
        for event_id, r in rows.items() if event_id in inserted and r["event"] in FUNNEL_STEPS))
    return result


@dataclass
class FileProblem:
    line: int
    key: str
    params: dict[str, Any]


def read_event_file(data: bytes, filename: str) -> Iterator[tuple[int, Any]]:
    """(line number, event) from a CSV (header row: FILE_COLUMNS) or JSON Lines
    file, as an existing tracking system exports them. A line that is not JSON
    yields None, which the checks reject. Every CSV value stays text."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput("events.file_too_large", limit_mb=MAX_FILE_BYTES // (1024 * 1024))
    name = filename.lower()
    text = _decode(data)
    if name.endswith((".jsonl", ".ndjson", ".json")):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError:
                yield number, None
        return
    if not name.endswith(".csv"):
        raise InvalidInput("events.file_type", filename=filename[:100])
    reader = csv.DictReader(io.StringIO(text, newline=""))
    headers = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in FILE_COLUMNS if c != "order_id" and c not in headers]
    if missing:
        raise InvalidInput("events.file_columns", columns=", ".join(missing))
    reader.fieldnames = headers
    for row in reader:
        yield reader.line_num, {key: (value if value is not None else "") for key, value in row.items()
                                if key in FILE_COLUMNS}


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("events.file_encoding")


@dataclass
class FileImportResult:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    problems: list[FileProblem] = field(default_factory=list)


def import_event_file(*, session_factory: Callable[[], Any], actor: Actor, data: bytes, filename: str,
                      progress: Callable[[int, int], None] | None = None) -> FileImportResult:
    """Import an event file in batches of MAX_BATCH, each its own transaction
    (intake is idempotent, so an interrupted import is simply run again).
    `session_factory` returns a context manager that commits on success."""
    require(actor, Capability.import_events)
    lines = list(read_event_file(data, filename))
    if not lines:
        raise InvalidInput("events.file_empty")
    result = FileImportResult(lines=len(lines))
    for start in range(0, len(lines), MAX_BATCH):
        chunk = lines[start:start + MAX_BATCH]
        with session_factory() as session:
            batch = ingest_events(session=session, actor=actor, events=[event for _, event in chunk],
                                  source="import")
        result.accepted += batch.accepted
        result.duplicates += batch.duplicates
        result.problems.extend(FileProblem(chunk[index][0], key, params) for index, key, params in batch.rejected)
        if progress:
            progress(min(start + MAX_BATCH, len(lines)), len(lines))
    return result

"""Tracking events (埋点): validation, idempotent intake, and event files.

Each event is checked on its own: bad ones are rejected with their index and
reason, good ones kept. A resend (same `event_id`) is a duplicate, never a new
event, also when two requests race (INSERT … ON CONFLICT DO NOTHING). Every
new funnel fact lands in `funnel_activity` and `funnel_pending` (what the
roll-up has yet to take in) in the same transaction.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from base.errors import InvalidInput
from base.timeutil import display_zone, utcnow
from core.auth.permissions import Actor, Capability, require
from db.fastsql import dialect_insert, insert_many, insert_new, one_of
from db.models import FunnelActivity, FunnelPending, FunnelState, Store, TrackingEvent
from db.typed import table_of

EVENT_NAMES = ("order_result_view", "entry_click", "guide_view", "add_click", "jump_fail")
# The funnel, in order; `added` comes from the WeCom callback, not from clients.
FUNNEL_STEPS = ("order_result_view", "entry_click", "guide_view", "add_click", "added")
# The part of `added` a channel code's State attributed (the precise part).
ADDED_BY_STATE = "added_by_state"
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


def day_number(moment: datetime, zone: ZoneInfo) -> int:
    """The day (days since 1970-01-01) of an aware time, cut at midnight in `zone`."""
    return (moment.astimezone(zone).date() - EPOCH).days


def fact_zone(*, session: Session) -> ZoneInfo:
    """The zone the stored days are cut in: recorded with the first fact, and
    kept until `rebuild-funnel` recuts every day in a new CONSOLE_TIMEZONE, so
    the days of old and new facts never mix two zones."""
    # FOR SHARE (PostgreSQL): a running rebuild holds this row; intake waits for it.
    read = select(FunnelState.zone).where(FunnelState.id == 1).with_for_update(read=True)
    zone = session.exec(read).first()
    if zone is None:
        zone = display_zone().key
        table = table_of(FunnelState)
        connection = session.connection()
        connection.execute(dialect_insert(connection, table).values(id=1, zone=zone)
                           .on_conflict_do_nothing(index_elements=[table.c.id]))
        zone = session.exec(read).one()
    return ZoneInfo(zone)


def day_of(number: int) -> date:
    return EPOCH + timedelta(days=number)


def number_of(day: date) -> int:
    return (day - EPOCH).days


@dataclass
class IntakeResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)  # (index, key, params)


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


_FACT_KEY = ("step", "user_key", "day", "store_id", "platform")
_FACT_COLUMNS = (*_FACT_KEY, "branch_id")


def record_activity(*, session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Add funnel facts (step, user_key, day, store_id, platform, branch_id);
    those already known are ignored, the new ones wait for the roll-up in
    funnel_pending. Returns how many facts were new."""
    unique = list({tuple(r[k] for k in _FACT_KEY): {k: r[k] for k in _FACT_COLUMNS} for r in rows}.values())
    if not unique:
        return 0
    connection = session.connection()
    new = insert_new(connection, table_of(FunnelActivity), unique, conflict=_FACT_KEY, returning=_FACT_KEY)
    insert_many(connection, table_of(FunnelPending), [dict(zip(_FACT_KEY, fact, strict=True)) for fact in new])
    return len(new)


def _store_lookup(session: Session, crm_ids: set[str]) -> dict[str, tuple[int, int]]:
    rows = session.exec(select(Store.crm_store_id, Store.id, Store.branch_id)
                        .where(one_of(session.connection(), col(Store.crm_store_id), sorted(crm_ids)))).all()
    stores: dict[str, tuple[int, int]] = {}
    for crm, store_id, branch_id in rows:
        assert store_id is not None  # a loaded row has its key
        stores[crm] = (store_id, branch_id)
    return stores


def ingest_events(*, session: Session, actor: Actor, events: Sequence[Any], source: str = "api",
                  now: datetime | None = None) -> IntakeResult:
    """Check and keep up to MAX_BATCH events; an actor scoped to a branch keeps
    only its own stores' events. The caller commits."""
    require(actor, Capability.import_events)
    if len(events) > MAX_BATCH:
        raise InvalidInput("events.batch_too_large", limit=MAX_BATCH)
    now = now or datetime.now(UTC)
    result = IntakeResult()
    checked: list[tuple[int, _Checked]] = []
    for index, raw in enumerate(events):
        outcome = _check(raw, now)
        if isinstance(outcome, tuple):
            result.rejected.append((index, *outcome))
        else:
            checked.append((index, outcome))
    stores = _store_lookup(session, {c.crm_store_id for _, c in checked})
    zone = fact_zone(session=session) if checked else display_zone()
    scope = actor.branch_scope
    received = utcnow()
    rows: dict[str, dict[str, Any]] = {}
    for index, event in checked:
        store = stores.get(event.crm_store_id)
        if store is None:
            result.rejected.append((index, "events.unknown_store", {"value": event.crm_store_id[:64]}))
            continue
        if scope is not None and store[1] != scope:
            result.rejected.append((index, "events.store_out_of_scope", {"value": event.crm_store_id[:64]}))
            continue
        if event.event_id in rows:
            result.duplicates += 1
            continue
        rows[event.event_id] = {
            "event_id": event.event_id, "event": event.event,
            "occurred_at": event.occurred_at.astimezone(UTC).replace(tzinfo=None),
            "day": day_number(event.occurred_at, zone), "user_key": event.user_key, "store_id": store[0],
            "branch_id": store[1], "platform": event.platform, "order_id": event.order_id, "source": source,
            "received_at": received}
    result.rejected.sort()
    if not rows:
        return result
    inserted = {new[0] for new in insert_new(session.connection(), table_of(TrackingEvent), list(rows.values()),
                                             conflict=("event_id",), returning=("event_id",))}
    result.accepted = len(inserted)
    result.duplicates += len(rows) - len(inserted)
    record_activity(session=session, rows=(
        {"step": r["event"], "user_key": r["user_key"], "day": r["day"], "store_id": r["store_id"],
         "platform": r["platform"], "branch_id": r["branch_id"]}
        for event_id, r in rows.items() if event_id in inserted and r["event"] in FUNNEL_STEPS))
    return result

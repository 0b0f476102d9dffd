"""The funnel and its rates (DESIGN.md, Metrics), exact to the last user.

Every user count is distinct `user_key`s over the whole range (an active user
on three days counts once), days cut at midnight in the zone the facts were
recorded in (CONSOLE_TIMEZONE), `to` inclusive. Chain- and branch-wide counts
read `funnel_rollup` (a few rows per branch and day, see
db.models.events.FunnelRollup); a store filter or the store drill-down count
`funnel_activity` directly, which is indexed by store. Figures follow each
store's current branch: when a store moves, its whole history moves with it
(the roll-up refiles it), so the branch table, the drill-down and a store
filter always agree. The binding figures are as of now
(core.directory.stores.branch_summaries).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from time import perf_counter, sleep
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, text, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from base.errors import PermissionDenied
from base.timeutil import display_zone
from core.auth.permissions import Actor
from core.funnel.intake import ADDED_BY_STATE, EPOCH, FUNNEL_STEPS
from db.fastsql import dialect_insert, execute_many
from db.models import (
    ContactEvent,
    FunnelActivity,
    FunnelPending,
    FunnelRollup,
    FunnelState,
    FunnelStoreBranch,
    Role,
    Store,
    TrackingEvent,
)
from db.typed import select_columns, table_of
from db.write_turns import yield_to_urgent_writers

# Ranges are at most this long; a gap of this many days or more means "not
# seen earlier in any allowed range".
MAX_RANGE_DAYS = 366
GAP_CAP = MAX_RANGE_DAYS
ALL_PLATFORMS = "*"
CHAIN = 0
# Most pending facts taken in per transaction: memory stays bounded whatever the backlog.
CHUNK_FACTS = 5_000
# On SQLite a chunk holds the write lock from start to commit, and intake and the
# WeCom callback (which must answer within a second) wait for it. So chunks there
# are sized by time, not count: each aims to hold the lock this long, the next
# chunk's size following how long the last one took, so a slow or busy machine
# takes smaller chunks instead of longer waits.
_SQLITE_HOLD_SECONDS = 0.2
_SQLITE_FIRST_CHUNK = 1_000
_SQLITE_SMALLEST_CHUNK = 100
# Between two chunks on SQLite, the time left to waiting writers: longer than the
# longest sleep of SQLite's busy handler (100 ms once a writer has waited 228 ms),
# so that a waiting writer wakes up inside the pause.
_SQLITE_TURN_SECONDS = 0.11
# The roll-ups' PostgreSQL advisory lock ("FUNNEL").
_LOCK_KEY = 0x46554E4E454C
ROLLUP_STEPS = (*FUNNEL_STEPS, ADDED_BY_STATE)
# The page counts pending facts up to this many, so the count stays cheap.
PENDING_COUNT_CAP = 10_000


#
# Invariant: funnel_rollup holds exactly the counts the facts in funnel_activity
# that are not in funnel_pending give, each filed under its `branch_id`. A new
# fact on day d can only change its user's rows on day d and on that user's
# next active day after d (whose gap shrinks); a store move only the rows of
# the users seen at that store. So each step reads the activity of the users
# concerned, computes their rows before and after, and adds the difference.

_ACTIVITY_COLUMNS = ["step", "user_key", "day", "store_id", "platform", "branch_id", "pending"]
_FACT_KEY = ["step", "user_key", "day", "store_id", "platform"]
_TEXT_COLUMNS = ("step", "user_key", "platform")
# (platform kept, branch kept) of each roll-up scope; each has its own distinct users.
_SCOPES = ((False, False), (True, False), (False, True), (True, True))

_PENDING_AFTER = """
SELECT step, user_key, day, store_id, platform FROM funnel_pending
WHERE (step, user_key, day, store_id, platform) > (:step, :user_key, :day, :store_id, :platform)
ORDER BY step, user_key, day, store_id, platform LIMIT :limit
"""
_PENDING_FIRST = """
SELECT step, user_key, day, store_id, platform FROM funnel_pending
ORDER BY step, user_key, day, store_id, platform LIMIT :limit
"""
# The activity of the users with a pending fact in [lo, hi], each row with
# whether it is pending, the branch its store's facts are filed under (its
# current branch when not filed yet) and whether it is not filed yet.
_CHUNK_ACTIVITY = """
SELECT a.step, a.user_key, a.day, a.store_id, a.platform, a.branch_id,
       CASE WHEN p.step IS NULL THEN 0 ELSE 1 END, COALESCE(f.branch_id, s.branch_id, a.branch_id),
       CASE WHEN f.branch_id IS NULL THEN 1 ELSE 0 END
FROM (SELECT DISTINCT step, user_key FROM funnel_pending
      WHERE (step, user_key, day, store_id, platform) >= (:lo_step, :lo_user_key, :lo_day, :lo_store_id, :lo_platform)
        AND (step, user_key, day, store_id, platform) <= (:hi_step, :hi_user_key, :hi_day, :hi_store_id, :hi_platform)
     ) t
JOIN funnel_activity a ON a.step = t.step AND a.user_key = t.user_key
LEFT JOIN funnel_pending p ON p.step = a.step AND p.user_key = a.user_key AND p.day = a.day
     AND p.store_id = a.store_id AND p.platform = a.platform
LEFT JOIN funnel_store_branch f ON f.store_id = a.store_id
LEFT JOIN store s ON s.id = a.store_id
WHERE a.day >= :from_day
"""
# The activity of the users seen at one store.
_STORE_ACTIVITY = """
SELECT a.step, a.user_key, a.day, a.store_id, a.platform, a.branch_id,
       CASE WHEN p.step IS NULL THEN 0 ELSE 1 END
FROM (SELECT DISTINCT step, user_key FROM funnel_activity WHERE store_id = :store_id) t
JOIN funnel_activity a ON a.step = t.step AND a.user_key = t.user_key
LEFT JOIN funnel_pending p ON p.step = a.step AND p.user_key = a.user_key AND p.day = a.day
     AND p.store_id = a.store_id AND p.platform = a.platform
WHERE a.day >= :from_day
"""
_MOVED_STORES = """
SELECT f.store_id FROM funnel_store_branch f JOIN store s ON s.id = f.store_id
WHERE f.branch_id <> s.branch_id ORDER BY f.store_id
"""


def _lock(session: Session) -> None:
    """Serialise roll-ups, for the rest of the transaction. PostgreSQL: an
    advisory lock (two roll-ups at once would add the same difference twice).
    SQLite: take the write lock now, waiting for it (busy timeout) rather than
    failing later on a stale read snapshot; intake waits for it in turn."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    else:
        session.connection().execute(text("DELETE FROM funnel_pending WHERE 1 = 0"))


def _columns(rows: Sequence[Sequence[Any]], names: list[str]) -> dict[str, np.ndarray]:
    """Query rows as one numpy array per column (text as objects: pandas' text
    arrays cost more to build than the roll-up's arithmetic)."""
    values = list(zip(*rows, strict=True)) or [()] * len(names)
    return {name: np.array(column, dtype=object if name in _TEXT_COLUMNS else np.int64)
            for name, column in zip(names, values, strict=True)}


def _same_as_previous(*columns: np.ndarray) -> np.ndarray:
    same = np.ones(len(columns[0]), dtype=bool)
    if len(same):
        same[0] = False
    for column in columns:
        same[1:] &= column[1:] == column[:-1]
    return same


def _sort_order(*keys: np.ndarray) -> np.ndarray:
    """The order sorting by the keys, first key first: one argsort of a packed
    int64 when the keys fit in 62 bits (they do at chain scale), else lexsort."""
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    capacity = 1
    for key in keys:
        low = int(key.min()) if len(key) else 0
        width = (int(key.max()) - low + 1) if len(key) else 1
        capacity *= width
        if capacity >= 2 ** 62:
            return np.lexsort(tuple(reversed(keys)))
        packed = packed * width + (key - low)
    return np.argsort(packed, kind="stable")


def _scope_rows(steps: np.ndarray, users: np.ndarray, days: np.ndarray, platforms: np.ndarray,
                branches: np.ndarray, known_platform: np.ndarray) -> list[np.ndarray]:
    """(platform code, branch, step code, day, gap) of every distinct (scope,
    user, day) in the four scopes; platform code −1 is all platforms."""
    parts: list[list[np.ndarray]] = []
    for keep_platform, keep_branch in _SCOPES:
        # WeCom does not say on which platform a customer was added.
        chosen = known_platform if keep_platform else np.ones(len(days), dtype=bool)
        count = int(chosen.sum())
        if not count:
            continue
        p = platforms[chosen] if keep_platform else np.full(count, -1, dtype=np.int64)
        b = branches[chosen] if keep_branch else np.full(count, CHAIN, dtype=np.int64)
        s, u, d = steps[chosen], users[chosen], days[chosen]
        order = _sort_order(p, b, s, u, d)
        p, b, s, u, d = p[order], b[order], s[order], u[order], d[order]
        distinct = ~(_same_as_previous(p, b, s, u) & _same_as_previous(d))
        p, b, s, u, d = p[distinct], b[distinct], s[distinct], u[distinct], d[distinct]
        previous = np.roll(d, 1)
        gap = np.where(_same_as_previous(p, b, s, u), np.minimum(d - previous, GAP_CAP), GAP_CAP)
        parts.append([p, b, s, d, gap])
    if not parts:
        return [np.zeros(0, dtype=np.int64)] * 5
    return [np.concatenate(column) for column in zip(*parts, strict=True)]


def _difference(facts: dict[str, np.ndarray], before: np.ndarray, after: np.ndarray,
                after_branches: np.ndarray, from_day: int) -> list[tuple]:
    """The roll-up rows (day ≥ from_day) that the facts `after` give minus those
    the facts `before` give, zero differences left out, as (platform, branch,
    step, day, gap, users) tuples. `facts` holds every fact of the users
    concerned from from_day − GAP_CAP on."""
    if not len(facts["day"]):
        return []
    steps, step_names = pd.factorize(facts["step"])
    platforms, platform_names = pd.factorize(facts["platform"])
    users = pd.factorize(facts["user_key"])[0]
    days, branches = facts["day"], facts["branch_id"]
    platform_names = np.asarray(platform_names, dtype=object)
    known_platform = platform_names[platforms] != ""
    columns = []
    for mask, branch_values, sign in ((before, branches, -1), (after, after_branches, 1)):
        p, b, s, d, gap = _scope_rows(steps[mask], users[mask], days[mask], platforms[mask],
                                      branch_values[mask], known_platform[mask])
        inside = d >= from_day
        columns.append((p[inside], b[inside], s[inside], d[inside], gap[inside],
                        np.full(int(inside.sum()), sign, dtype=np.int64)))
    p, b, s, d, gap, change = (np.concatenate(parts) for parts in zip(*columns, strict=True))
    counts = pd.DataFrame({"p": p, "b": b, "s": s, "d": d, "gap": gap, "users": change}) \
        .groupby(["p", "b", "s", "d", "gap"], sort=False)["users"].sum()
    counts = counts[counts != 0]
    p, b, s, d, gap = (counts.index.get_level_values(level).to_numpy() for level in range(5))
    names = np.append(platform_names, ALL_PLATFORMS)  # code −1 → the last
    return list(zip(names[p].tolist(), b.tolist(), np.asarray(step_names, dtype=object)[s].tolist(), d.tolist(),
                    gap.tolist(), counts.to_numpy().tolist(), strict=True))


_ADD_TO_ROLLUP = ("INSERT INTO funnel_rollup (platform, branch_id, step, day, gap, users) VALUES (?, ?, ?, ?, ?, ?) "
                  "ON CONFLICT (platform, branch_id, step, day, gap) "
                  "DO UPDATE SET users = funnel_rollup.users + excluded.users")
_DROP_EMPTY_ROLLUP = ("DELETE FROM funnel_rollup WHERE platform = ? AND branch_id = ? AND step = ? AND day = ? "
                      "AND gap = ? AND users = 0")
_REFILE_FACT = ("UPDATE funnel_activity SET branch_id = ? "
                "WHERE step = ? AND user_key = ? AND day = ? AND store_id = ? AND platform = ?")
_FILE_STORE = "INSERT INTO funnel_store_branch (store_id, branch_id) VALUES (?, ?) ON CONFLICT (store_id) DO NOTHING"
_TAKEN_IN = "DELETE FROM funnel_pending WHERE step = ? AND user_key = ? AND day = ? AND store_id = ? AND platform = ?"


def _apply(connection: Connection, rows: list[tuple]) -> None:
    execute_many(connection, _ADD_TO_ROLLUP, rows)
    execute_many(connection, _DROP_EMPTY_ROLLUP, [row[:5] for row in rows if row[5] < 0])


def _take_in_pending(session: Session, limit: int, after: tuple | None) -> tuple[int, tuple | None]:
    """Take in up to `limit` pending facts after `after` (in key order): one
    transaction's work. Returns how many, and the last one's key."""
    _lock(session)
    connection = session.connection()
    if after is None:
        fetched = connection.execute(text(_PENDING_FIRST), {"limit": limit}).fetchall()
    else:
        fetched = connection.execute(text(_PENDING_AFTER),
                                     {**dict(zip(_FACT_KEY, after, strict=True)), "limit": limit}).fetchall()
    if not fetched:
        return 0, after
    chunk = [tuple(row) for row in fetched]
    first, last = chunk[0], chunk[-1]
    from_day = min(row[2] for row in chunk)
    params = {**{f"lo_{k}": v for k, v in zip(_FACT_KEY, first, strict=True)},
              **{f"hi_{k}": v for k, v in zip(_FACT_KEY, last, strict=True)}, "from_day": from_day - GAP_CAP}
    rows = connection.execute(text(_CHUNK_ACTIVITY), params).fetchall()
    facts = _columns(rows, [*_ACTIVITY_COLUMNS, "filed", "unfiled"])
    taken = set(chunk)
    in_chunk = np.fromiter((tuple(row[:5]) in taken for row in rows), dtype=bool, count=len(rows))
    pending = facts["pending"].astype(bool)
    branches = facts["branch_id"]
    # A pending fact is filed under its store's filing branch, whatever the
    # store's branch was when intake read it.
    target = facts["filed"]
    after_branches = np.where(in_chunk, target, branches)
    refile = np.flatnonzero(in_chunk & (target != branches))
    execute_many(connection, _REFILE_FACT, [(int(target[i]), *rows[i][:5]) for i in refile.tolist()])
    unfiled = np.flatnonzero(in_chunk & facts["unfiled"].astype(bool))
    execute_many(connection, _FILE_STORE, sorted({(int(facts["store_id"][i]), int(target[i])) for i in unfiled}))
    _apply(connection, _difference(facts, ~pending, ~pending | in_chunk, after_branches, from_day))
    execute_many(connection, _TAKEN_IN, chunk)
    return len(chunk), last


def _move_store(session: Session, store_id: int) -> bool:
    """File a moved store's whole history under its current branch."""
    _lock(session)
    connection = session.connection()
    row = connection.execute(text("SELECT f.branch_id, s.branch_id FROM funnel_store_branch f "
                                  "JOIN store s ON s.id = f.store_id WHERE f.store_id = :store_id"),
                             {"store_id": store_id}).first()
    if row is None or row[0] == row[1]:
        return False
    new_branch = row[1]
    first_day = connection.execute(text("SELECT min(day) FROM funnel_activity WHERE store_id = :store_id"),
                                   {"store_id": store_id}).scalar()
    if first_day is not None:
        facts = _columns(connection.execute(text(_STORE_ACTIVITY), {"store_id": store_id,
                                                                    "from_day": first_day - GAP_CAP}).fetchall(),
                         _ACTIVITY_COLUMNS)
        settled = ~facts["pending"].astype(bool)
        moved = np.where(facts["store_id"] == store_id, new_branch, facts["branch_id"])
        _apply(connection, _difference(facts, settled, settled, moved, first_day))
        activity = table_of(FunnelActivity)
        connection.execute(update(activity).where(activity.c.store_id == store_id).values(branch_id=new_branch))
    filing = table_of(FunnelStoreBranch)
    connection.execute(update(filing).where(filing.c.store_id == store_id).values(branch_id=new_branch))
    return True


@dataclass
class _Pace:
    """How a roll-up cuts its work: `size` facts in the next chunk, `end` after each."""

    size: int
    end: Callable[[], None]
    sqlite: bool = False  # pause after each chunk, for waiting writers
    bind: Engine | Connection | None = None  # where urgent writers are announced (SQLite)
    timed: bool = False  # size chunks by time (see _SQLITE_HOLD_SECONDS)

    def chunk_done(self, started: float | None = None) -> None:
        """End a chunk; `started` (perf_counter) when it took in facts, to size the next one."""
        self.end()
        if not self.sqlite:
            return
        if self.timed and started is not None:
            held = max(perf_counter() - started, 0.001)
            # At most double at a time, so one quick chunk does not make a long one.
            grown = min(int(self.size * _SQLITE_HOLD_SECONDS / held), self.size * 2)
            self.size = max(_SQLITE_SMALLEST_CHUNK, min(CHUNK_FACTS, grown))
        # SQLite's write lock has no queue: writers waiting for it sleep in their
        # busy handlers. Without a pause the next chunk would take the lock first,
        # again and again; and an urgent writer that slept through the pause goes first.
        sleep(_SQLITE_TURN_SECONDS)
        if self.bind is not None:
            yield_to_urgent_writers(self.bind)


def _roll_up(session: Session, pace: _Pace) -> dict[str, int]:
    moved = 0
    for store_id in session.connection().execute(text(_MOVED_STORES)).scalars().all():
        moved += _move_store(session, store_id)
        pace.chunk_done()
    facts, after = 0, None
    while True:
        started, limit = perf_counter(), pace.size
        taken, after = _take_in_pending(session, limit, after)
        pace.chunk_done(started)
        facts += taken
        if taken < limit:
            return {"facts": facts, "moved_stores": moved}


def refresh_rollup(*, session: Session, chunk_facts: int | None = None) -> dict[str, int]:
    """Take the pending facts and store moves into the roll-up, a chunk per
    transaction: each chunk commits (all or nothing), so call this with nothing
    uncommitted in `session`. Facts that arrive meanwhile wait for the next run.
    `chunk_facts` fixes the chunks' size (tests); by default it follows the database."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    size = chunk_facts or (_SQLITE_FIRST_CHUNK if sqlite else CHUNK_FACTS)
    return _roll_up(session, _Pace(size, session.commit, sqlite=sqlite, timed=sqlite and chunk_facts is None,
                                   bind=session.get_bind()))


def roll_up_in_transaction(*, session: Session) -> dict[str, int]:
    """The same in the caller's transaction (the demo seeds and rolls up at once)."""
    return _roll_up(session, _Pace(CHUNK_FACTS, lambda: None))


@dataclass(frozen=True)
class PendingWork:
    facts: int  # up to PENDING_COUNT_CAP
    moved_stores: int

    def __bool__(self) -> bool:
        return bool(self.facts or self.moved_stores)


def pending(*, session: Session) -> PendingWork:
    """What the roll-up has not taken in yet: new facts and moved stores."""
    facts = session.connection().execute(text(
        f"SELECT count(*) FROM (SELECT 1 FROM funnel_pending LIMIT {PENDING_COUNT_CAP}) t")).scalar_one()
    moved = session.connection().execute(text(f"SELECT count(*) FROM ({_MOVED_STORES}) t")).scalar_one()
    return PendingWork(int(facts), int(moved))


def recorded_zone(*, session: Session) -> str:
    """The zone the stored days are cut in (the configured one before any fact)."""
    return session.exec(select(FunnelState.zone).where(FunnelState.id == 1)).first() or display_zone().key


@dataclass(frozen=True)
class ZoneChange:
    recorded: str
    configured: str


def zone_change(*, session: Session) -> ZoneChange | None:
    """Set when CONSOLE_TIMEZONE differs from the zone the stored days are cut
    in: the figures stay in the recorded zone until `rebuild-funnel`."""
    recorded = session.exec(select(FunnelState.zone).where(FunnelState.id == 1)).first()
    configured = display_zone().key
    return ZoneChange(recorded, configured) if recorded is not None and recorded != configured else None


_REBUILD_BATCH = 100_000


def _days_in(moments: tuple[datetime, ...], zone: str) -> list[int]:
    """Day numbers of naive-UTC times, cut at midnight in `zone`."""
    local = pd.DatetimeIndex(moments).tz_localize("UTC").tz_convert(zone).tz_localize(None)
    return (local.to_numpy().astype("datetime64[D]") - np.datetime64(EPOCH, "D")).astype(np.int64).tolist()


_INSERT_FACTS = ("INSERT INTO funnel_activity (step, user_key, day, store_id, platform, branch_id) "
                 "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")


def rebuild_funnel(*, session: Session, actor: Actor) -> dict[str, int]:
    """Recut every fact's day in the configured CONSOLE_TIMEZONE from the kept
    tracking and contact events, file every store under its current branch and
    leave everything pending for the roll-up. One transaction: intake and the
    callback wait until it commits. The caller commits, then rolls up."""
    if actor.role != Role.hq_admin:
        raise PermissionDenied()
    zone = display_zone().key
    connection = session.connection()
    # Intake reads this row (FOR SHARE on PostgreSQL): it waits until the rebuild commits.
    state = table_of(FunnelState)
    connection.execute(dialect_insert(connection, state).values(id=1, zone=zone)
                       .on_conflict_do_update(index_elements=[state.c.id], set_={"zone": zone}))
    _lock(session)
    for table in (FunnelPending, FunnelRollup, FunnelActivity, FunnelStoreBranch):
        connection.execute(delete(table_of(table)))
    branches: dict[int, int] = dict(connection.execute(select(Store.id, Store.branch_id)).all())
    events, last_id = 0, 0
    while True:
        rows = connection.execute(
            select_columns(TrackingEvent.id, TrackingEvent.event, TrackingEvent.occurred_at, TrackingEvent.user_key,
                           TrackingEvent.store_id, TrackingEvent.platform)
            .where(col(TrackingEvent.id) > last_id, col(TrackingEvent.event).in_(FUNNEL_STEPS))
            .order_by(col(TrackingEvent.id)).limit(_REBUILD_BATCH)).fetchall()
        if not rows:
            break
        ids, steps, moments, users, stores, platforms = zip(*rows, strict=True)
        execute_many(connection, _INSERT_FACTS, list(zip(steps, users, _days_in(moments, zone), stores, platforms,
                                                         [branches[store] for store in stores], strict=True)))
        events, last_id = events + len(rows), ids[-1]
    adds = connection.execute(
        select(ContactEvent.external_userid, ContactEvent.occurred_at, ContactEvent.store_id,
               func.trim(ContactEvent.state) == Store.crm_store_id)
        .join(Store, col(Store.id) == ContactEvent.store_id)
        .where(ContactEvent.change_type == "add_external_contact")).fetchall()
    if adds:
        externals, moments, stores, by_state = zip(*adds, strict=True)
        facts = []
        for external, day, store, state in zip(externals, _days_in(moments, zone), stores, by_state, strict=True):
            facts.append(("added", external, day, store, "", branches[store]))
            if state:
                facts.append((ADDED_BY_STATE, external, day, store, "", branches[store]))
        execute_many(connection, _INSERT_FACTS, facts)
    connection.execute(text("INSERT INTO funnel_pending (step, user_key, day, store_id, platform) "
                            "SELECT step, user_key, day, store_id, platform FROM funnel_activity"))
    connection.execute(text("INSERT INTO funnel_store_branch (store_id, branch_id) SELECT id, branch_id FROM store"))
    facts_count = connection.execute(select(func.count()).select_from(FunnelActivity)).scalar_one()
    return {"events": events, "adds": len(adds), "facts": int(facts_count)}

"""Funnel benchmark at chain scale: 50,000 stores, 10,000,000 events over 30 days.

Prints
  1. intake throughput through POST /api/v1/events (uvicorn on loopback, batches
     of 1,000, one client and four concurrent clients) into a database whose
     tracking_event table (and its unique event_id index) already holds every
     raw event;
  2. the roll-up: taking in all 30 days at once (what `rebuild-funnel` or a
     fresh migration leaves pending), the sidecar's usual run after intake, one
     late event 25 days back, and a history file imported through the page's
     code path (core.funnel.event_files.import_event_file) followed by its roll-up; the
     peak memory of this process;
  3. the page's queries (binding rate per branch; funnel per branch for the 30
     days, for days 11-20, for the mini program only, and for a range reaching
     into the imported history) beside DuckDB computing the same definitions
     over the same raw events, the ratio, and whether every figure is equal.

The raw events go to DuckDB and, bulk-loaded, to tracking_event; the console's
funnel facts are what intake derives from them (bulk-loaded for time, left
pending) and are rolled up by core.funnel.rollup.
Usage: .venv/bin/python bench/metrics_funnel.py [--events N] [--stores N] [--history N]
"""

import argparse
import io
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlmodel import Session  # noqa: E402

from base.config import get_settings
from core.auth import api_keys  # noqa: E402
from core.auth.permissions import system_actor
from core.funnel import event_files, queries, rollup
from core.funnel import intake as funnel_intake
from db.engine import get_engine, session_scope  # noqa: E402
from db.migrate import upgrade_to_head  # noqa: E402
from tests.support.postgres import free_port  # noqa: E402

SYSTEM = system_actor("bench")
SHANGHAI = 8 * 3600  # Asia/Shanghai has had no daylight saving since 1991
STEPS = np.array(["order_result_view", "entry_click", "guide_view", "add_click", "jump_fail"])
STEP_SHARE = [0.56, 0.16, 0.14, 0.11, 0.03]
PLATFORMS = np.array(["app", "miniprogram", "h5"])
PLATFORM_SHARE = [0.6, 0.3, 0.1]
FACT_KEY = ["step", "user_key", "day", "store_id", "platform"]


@contextmanager
def timed(label: str):
    class Timer:
        seconds = 0.0

    timer = Timer()
    start = time.perf_counter()
    yield timer
    timer.seconds = time.perf_counter() - start
    print(f"  {label}: {timer.seconds:.1f} s", flush=True)


def best_of(fn, runs: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


ROLL_UP_CHILD = """
import json, time
from sqlmodel import Session
from core import metrics
from db.engine import get_engine
start = time.perf_counter()
with Session(get_engine()) as session:
    facts = rollup.refresh_rollup(session=session)["facts"]
# VmHWM: this process's own peak (ru_maxrss would start from the parent's size at fork).
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"facts": facts, "seconds": time.perf_counter() - start, "peak_mb": peak / 1024}))
"""


def roll_up_in_child(label: str) -> dict:
    """One roll-up run in a process of its own, as the sidecar runs it, with
    that process's peak memory."""
    done = subprocess.run([sys.executable, "-c", ROLL_UP_CHILD], cwd=ROOT, env={**os.environ}, check=True,
                          capture_output=True, text=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {label}: {figures['seconds']:.1f} s, {figures['facts']:,} facts "
          f"({figures['facts'] / figures['seconds']:,.0f} facts/s), peak memory {figures['peak_mb']:,.0f} MB",
          flush=True)
    return figures


def build_org(conn: sqlite3.Connection, stores: int, branches: int, rng: np.random.Generator) -> pd.DataFrame:
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    conn.executemany("INSERT INTO branch (id, code, name, created_at) VALUES (?, ?, ?, ?)",
                     [(b + 1, f"B{b + 1:03d}", f"分公司{b + 1:03d}", now) for b in range(branches)])
    status = np.where(rng.random(stores) < 0.05, "closed", "open")
    frame = pd.DataFrame({"id": np.arange(1, stores + 1), "crm_store_id": [f"{i:06d}" for i in range(1, stores + 1)],
                          "branch_id": np.arange(stores) % branches + 1, "status": status})
    conn.executemany("INSERT INTO store (id, crm_store_id, name, branch_id, status, version, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                     [(int(r.id), r.crm_store_id, f"门店{r.crm_store_id}", int(r.branch_id), r.status, now, now)
                      for r in frame.itertuples()])
    conn.executemany("INSERT INTO account (id, userid, name, capacity_limit, status, customer_count, version, "
                     "created_at, updated_at) VALUES (?, ?, ?, 5000, 'active', 0, 1, ?, ?)",
                     [(i, f"kf{i:06d}", f"客服{i:06d}", now, now) for i in range(1, stores + 1)])
    bound = (frame.status == "open") & (rng.random(stores) < 0.85)
    frame["bound"] = bound
    conn.executemany("INSERT INTO binding (store_id, account_id, shown, started_at, version, updated_at) "
                     "VALUES (?, ?, 1, ?, 1, ?)", [(int(i), int(i), now, now) for i in frame.id[bound]])
    conn.commit()
    return frame


def make_events(n: int, stores: pd.DataFrame, first_day: date, days: int, rng: np.random.Generator,
                prefix: str) -> pd.DataFrame:
    """Messy on purpose: users come back on other days and at other stores."""
    pool = max(1000, n // 4)
    user = (rng.random(n) ** 1.6 * pool).astype(np.int64)
    home = user % len(stores)
    elsewhere = rng.random(n) < 0.15
    store_index = np.where(elsewhere, rng.integers(0, len(stores), n), home)
    day0 = int(datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC).timestamp()) - SHANGHAI
    seconds = day0 + rng.integers(0, days, n) * 86400 + rng.integers(0, 86400, n)
    frame = pd.DataFrame({
        # Random hex ids, as clients make them (UUID-like): intake inserts them all over the index.
        "event_id": [f"{prefix}{v:016x}{w:08x}"
                     for v, w in zip(rng.integers(0, 2 ** 63, n).tolist(), range(n), strict=True)],
        "event": STEPS[rng.choice(len(STEPS), n, p=STEP_SHARE)],
        "occurred_s": seconds,
        "user_key": "u" + pd.Series(user).astype(str),
        "store_id": stores.id.to_numpy()[store_index],
        "crm_store_id": stores.crm_store_id.to_numpy()[store_index],
        "branch_id": stores.branch_id.to_numpy()[store_index],
        "platform": PLATFORMS[rng.choice(3, n, p=PLATFORM_SHARE)],
    })
    frame["day"] = (frame.occurred_s + SHANGHAI) // 86400
    return frame


def make_adds(events: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    clicks = events[events.event == "add_click"]
    adds = clicks[rng.random(len(clicks)) < 0.7]
    return pd.DataFrame({"external": "wm" + adds.user_key.str[1:], "occurred_s": adds.occurred_s + 60,
                         "store_id": adds.store_id, "branch_id": adds.branch_id,
                         "day": (adds.occurred_s + 60 + SHANGHAI) // 86400,
                         "by_state": rng.random(len(adds)) < 0.6})


def load_events(conn: sqlite3.Connection, events: pd.DataFrame) -> None:
    """The raw events into tracking_event, in event_id order (the index is the
    same as after random inserts; only loading is faster)."""
    ordered = events.sort_values("event_id")
    stamps = pd.to_datetime(ordered.occurred_s, unit="s").dt.strftime("%Y-%m-%d %H:%M:%S.000000")
    rows = zip(ordered.event_id, ordered.event, stamps, ordered.day.astype(int).tolist(), ordered.user_key,
               ordered.store_id.astype(int).tolist(), ordered.branch_id.astype(int).tolist(), ordered.platform,
               strict=True)
    conn.executemany("INSERT INTO tracking_event (event_id, event, occurred_at, day, user_key, store_id, branch_id, "
                     "platform, order_id, source, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 'bench', ?)",
                     ((*row[:3], *row[3:], row[2]) for row in rows))
    conn.commit()


def load_facts(conn: sqlite3.Connection, events: pd.DataFrame, adds: pd.DataFrame) -> int:
    """The funnel facts intake derives from the events and adds, all pending."""
    funnel = events[events.event != "jump_fail"]
    state = adds[adds.by_state]
    rows = pd.concat([
        pd.DataFrame({"step": funnel.event, "user_key": funnel.user_key, "day": funnel.day,
                      "store_id": funnel.store_id, "platform": funnel.platform, "branch_id": funnel.branch_id}),
        pd.DataFrame({"step": "added", "user_key": adds.external, "day": adds.day, "store_id": adds.store_id,
                      "platform": "", "branch_id": adds.branch_id}),
        pd.DataFrame({"step": "added_by_state", "user_key": state.external, "day": state.day,
                      "store_id": state.store_id, "platform": "", "branch_id": state.branch_id}),
    ]).drop_duplicates(FACT_KEY).sort_values(FACT_KEY)
    # Loaded without the secondary indexes, which are then built once (faster than kept up row by row).
    conn.execute("DROP INDEX ix_funnel_activity_store_day_user")
    conn.execute("DROP INDEX ix_funnel_activity_step_store_user")
    tuples = list(rows.itertuples(index=False, name=None))
    conn.executemany("INSERT INTO funnel_activity (step, user_key, day, store_id, platform, branch_id) "
                     "VALUES (?, ?, ?, ?, ?, ?)", tuples)
    conn.executemany("INSERT INTO funnel_pending (step, user_key, day, store_id, platform) VALUES (?, ?, ?, ?, ?)",
                     (row[:5] for row in tuples))
    conn.execute("CREATE INDEX ix_funnel_activity_store_day_user ON funnel_activity "
                 "(store_id, day, step, user_key, platform)")
    conn.execute("CREATE INDEX ix_funnel_activity_step_store_user ON funnel_activity "
                 "(step, store_id, user_key, day, platform)")
    conn.execute("INSERT INTO funnel_store_branch (store_id, branch_id) SELECT id, branch_id FROM store")
    conn.commit()
    conn.execute("ANALYZE")
    return len(rows)


@contextmanager
def events_api():
    """POST /api/v1/events alone under uvicorn on a free loopback port (DATABASE_URL from the
    environment); its base URL, once it answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "import uvicorn; from starlette.applications import Starlette; "
         "from console.web.events_api import ROUTES; "
         f"uvicorn.run(Starlette(routes=ROUTES), host='127.0.0.1', port={port}, log_level='warning')"],
        cwd=ROOT, env={**os.environ})
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.post(f"{base}/api/v1/events", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def intake(url: str, key: str, stores: pd.DataFrame, batches: int, clients: int, tag: str) -> float:
    crm = stores.crm_store_id.to_numpy()
    now = datetime.now(UTC).isoformat()
    rng = np.random.default_rng(7)

    def batch(number: int) -> list[dict]:
        picks = rng.integers(0, len(crm), 1000)
        ids = rng.integers(0, 2 ** 63, 1000).tolist()
        return [{"event_id": f"{tag}{ids[i]:016x}{number:05d}{i:03d}", "event": str(STEPS[i % 4]),
                 "occurred_at": now, "user_key": f"i{number % 500}-{i}", "crm_store_id": str(crm[picks[i]]),
                 "platform": "app", "order_id": f"O{number}{i}"} for i in range(1000)]

    bodies = [json.dumps(batch(n)).encode() for n in range(batches)]
    accepted = [0] * clients

    def run(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": key,
                                                             "Content-Type": "application/json"}) as client:
            for body in bodies[worker::clients]:
                response = client.post("/api/v1/events", content=body)
                response.raise_for_status()
                accepted[worker] += response.json()["accepted"]

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(w,)) for w in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    assert sum(accepted) == batches * 1000, accepted
    return batches * 1000 / seconds


def history_file(history: pd.DataFrame) -> bytes:
    """The history as a CSV export of an existing tracking system."""
    frame = pd.DataFrame({
        "event_id": history.event_id, "event": history.event,
        "occurred_at": pd.to_datetime(history.occurred_s, unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        "user_key": history.user_key, "crm_store_id": history.crm_store_id, "platform": history.platform})
    return frame.to_csv(index=False).encode()


BINDING_SQL = """
    SELECT s.branch_id, count(*) FILTER (WHERE s.status = 'open'),
           count(b.store_id) FILTER (WHERE s.status = 'open')
    FROM stores s LEFT JOIN bindings b ON b.store_id = s.id AND b.ended_at IS NULL GROUP BY s.branch_id"""


def duckdb_figures(con: duckdb.DuckDBPyConnection, start_s: int, end_s: int, platform: str | None) -> dict:
    """The DESIGN.md definitions straight over the raw events and stores."""
    binding = con.execute(BINDING_SQL).fetchall()
    platform_clause = "" if platform is None else f"AND e.platform = '{platform}'"
    query = f"""
        SELECT s.branch_id, e.event, count(DISTINCT e.user_key)
        FROM events e JOIN stores s ON s.id = e.store_id
        WHERE e.occurred_s >= ? AND e.occurred_s < ? AND e.event <> 'jump_fail' {platform_clause}
        GROUP BY ALL"""
    params = [start_s, end_s]
    if platform is None:  # WeCom gives no platform: adds only without a platform filter
        query += """ UNION ALL
        SELECT s.branch_id, 'added', count(DISTINCT a.external)
        FROM adds a JOIN stores s ON s.id = a.store_id
        WHERE a.occurred_s >= ? AND a.occurred_s < ? GROUP BY ALL"""
        params += [start_s, end_s]
    funnel = con.execute(query, params).fetchall()
    result: dict[int, dict] = {b: {"open_stores": o, "bound_stores": k} for b, o, k in binding}
    for branch_id, step, users in funnel:
        result[branch_id][step] = users
    return result


def compare(engine, con, label: str, first: date, last: date, platform: str | None) -> tuple[float, float, bool]:
    filters = queries.MetricsFilter(first, last, platform=platform)
    with Session(engine) as session:
        ours_s, rows = best_of(lambda: queries.by_branch(session=session, actor=SYSTEM, filters=filters))
    start_s = int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp()) - SHANGHAI
    end_s = int(datetime(last.year, last.month, last.day, tzinfo=UTC).timestamp()) - SHANGHAI + 86400
    duck_s, duck = best_of(lambda: duckdb_figures(con, start_s, end_s, platform))
    steps = funnel_intake.FUNNEL_STEPS if platform is None else funnel_intake.FUNNEL_STEPS[:4]
    ours = {row.branch_id: {"open_stores": row.open_stores, "bound_stores": row.bound_stores,
                            **{step: row.funnel.count(step) for step in steps}} for row in rows}
    mismatches = [(b, k, ours[b].get(k, 0), v) for b, figures in duck.items() for k, v in figures.items()
                  if ours[b].get(k, 0) != v]
    print(f"  {label}: console {ours_s * 1000:.0f} ms, DuckDB {duck_s * 1000:.0f} ms, ratio {ours_s / duck_s:.2f}, "
          f"equal: {not mismatches}" + ("" if not mismatches else f" — {mismatches[:5]}"), flush=True)
    return ours_s, duck_s, not mismatches


def compare_drill_down(engine, con, first: date, last: date, branch_id: int) -> None:
    """The store drill-down of one branch against DuckDB's per-store count."""
    filters = queries.MetricsFilter(first, last, branch_id)
    with Session(engine) as session:
        ours_s, rows = best_of(lambda: queries.by_store(session=session, actor=SYSTEM, filters=filters))
    start_s = int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp()) - SHANGHAI
    end_s = int(datetime(last.year, last.month, last.day, tzinfo=UTC).timestamp()) - SHANGHAI + 86400
    query = """
        SELECT e.store_id, e.event, count(DISTINCT e.user_key) FROM events e JOIN stores s ON s.id = e.store_id
        WHERE s.branch_id = ? AND e.occurred_s >= ? AND e.occurred_s < ? AND e.event <> 'jump_fail' GROUP BY ALL
        UNION ALL
        SELECT a.store_id, 'added', count(DISTINCT a.external) FROM adds a JOIN stores s ON s.id = a.store_id
        WHERE s.branch_id = ? AND a.occurred_s >= ? AND a.occurred_s < ? GROUP BY ALL"""
    duck_s, duck = best_of(lambda: con.execute(query, [branch_id, start_s, end_s] * 2).fetchall())
    ours = {(row.store_id, step): row.funnel.count(step) for row in rows for step in funnel_intake.FUNNEL_STEPS
            if row.funnel.count(step)}
    equal = ours == {(store, step): users for store, step, users in duck}
    print(f"  store drill-down of one branch ({len(rows)} stores), 30 days: console {ours_s * 1000:.0f} ms, "
          f"DuckDB {duck_s * 1000:.0f} ms, ratio {ours_s / duck_s:.2f}, equal: {equal}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--stores", type=int, default=50_000)
    parser.add_argument("--branches", type=int, default=100)
    parser.add_argument("--intake-batches", type=int, default=200)
    parser.add_argument("--history", type=int, default=1_000_000, help="events in the imported history file")
    args = parser.parse_args()
    rng = np.random.default_rng(20261123)
    workdir = Path(tempfile.mkdtemp(prefix="swc-bench-metrics-"))
    url = f"sqlite:///{workdir / 'console.db'}"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("CONSOLE_SECRET_KEY", "bench")
    get_settings.cache_clear()
    print(f"funnel benchmark: {args.events:,} events, 30 days, {args.stores:,} stores, {args.branches} branches; "
          f"history file {args.history:,} events")
    upgrade_to_head(url)
    conn = sqlite3.connect(workdir / "console.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    today = datetime.now(UTC).astimezone().date()
    first_day = today - timedelta(days=30)  # the 30 days before today; intake goes to today
    history_first = first_day - timedelta(days=60)
    with timed("org (branches, stores, accounts, bindings)"):
        stores = build_org(conn, args.stores, args.branches, rng)
    with timed("generate raw events"):
        events = make_events(args.events, stores, first_day, 30, rng, "e")
        adds = make_adds(events, rng)
        # The history: the same users over the 60 days before, from another system.
        history = make_events(args.history, stores, history_first, 60, rng, "h")
    with timed(f"bulk-load {len(events):,} raw events into tracking_event"):
        load_events(conn, events)
    with timed("bulk-load derived funnel facts (pending)"):
        facts = load_facts(conn, events, adds)
    print(f"  funnel facts: {facts:,} from {len(events):,} events and {len(adds):,} added customers")
    conn.close()

    engine = get_engine(url)
    full = roll_up_in_child("roll-up, taking in all 30 days at once")

    with Session(engine) as session:
        _row, key = api_keys.create_api_key(session=session, actor=SYSTEM, name="bench")
        session.commit()
    with events_api() as base:
        single = intake(base, key, stores, args.intake_batches, 1, "o")
        print(f"  intake, 1 client: {single:,.0f} events/s ({len(events):,} events already stored)", flush=True)
        four = intake(base, key, stores, args.intake_batches, 4, "f")
        print(f"  intake, 4 clients: {four:,.0f} events/s", flush=True)
    usual = roll_up_in_child("roll-up, the sidecar's usual run (the intake's new facts)")

    # One late event for a frequent user, 25 days back: it changes that user's next active day.
    late_at = datetime(first_day.year, first_day.month, first_day.day, 12, tzinfo=UTC) + timedelta(days=5)
    regular = events.user_key.value_counts().index[0]
    late = {"event_id": "late-1", "event": "order_result_view", "occurred_at": late_at.isoformat(),
            "user_key": regular, "crm_store_id": stores.crm_store_id.iat[0], "platform": "h5"}
    with session_scope(engine) as session:
        funnel_intake.ingest_events(session=session, actor=SYSTEM, events=[late])
    with Session(engine) as session, timed("roll-up after one late event (25 days back), in this process") \
            as late_run:
        rollup.refresh_rollup(session=session)
    events = pd.concat([events, pd.DataFrame([{
        "event_id": "late-1", "event": "order_result_view", "occurred_s": int(late_at.timestamp()), "user_key": regular,
        "store_id": int(stores.id.iat[0]), "crm_store_id": stores.crm_store_id.iat[0],
        "branch_id": int(stores.branch_id.iat[0]), "platform": "h5",
        "day": (int(late_at.timestamp()) + SHANGHAI) // 86400}])], ignore_index=True)

    data = history_file(history)
    with timed(f"import a {len(data) / 1e6:,.0f} MB history file ({len(history):,} events) as the page does") as imp:
        result = event_files.import_event_file(session_factory=lambda: session_scope(engine), actor=SYSTEM,
                                            stream=io.BytesIO(data), filename="history.csv")
    assert result.accepted == len(history) and not result.problems, (result.accepted, result.problems[:3])
    print(f"  history import: {len(history) / imp.seconds:,.0f} events/s")
    history_run = roll_up_in_child("roll-up after the history import")

    with Session(engine) as session:
        from core.directory.stores import branch_summaries

        binding_s, _ = best_of(lambda: branch_summaries(session=session, actor=SYSTEM))
        filters = queries.MetricsFilter(first_day, first_day + timedelta(days=29))
        overall_s, _ = best_of(lambda: queries.overall(session=session, actor=SYSTEM, filters=filters))

    con = duckdb.connect()
    con.execute("SET threads = 2")
    raw = pd.concat([events, history], ignore_index=True)
    con.register("events_df", raw[["event", "occurred_s", "user_key", "store_id", "platform"]])
    con.register("adds_df", adds[["external", "occurred_s", "store_id"]])
    con.register("stores_df", stores[["id", "branch_id", "status"]])
    con.register("bindings_df", pd.DataFrame({"store_id": stores.id[stores.bound],
                                              "ended_at": pd.Series([None] * int(stores.bound.sum()),
                                                                    dtype="datetime64[us]")}))
    con.execute("CREATE TABLE events AS SELECT * FROM events_df")
    con.execute("CREATE TABLE adds AS SELECT * FROM adds_df")
    con.execute("CREATE TABLE stores AS SELECT * FROM stores_df")
    con.execute("CREATE TABLE bindings AS SELECT * FROM bindings_df")
    duck_binding_s, _ = best_of(lambda: con.execute(BINDING_SQL).fetchall())

    print("results")
    print(f"  binding rate per branch: console {binding_s * 1000:.0f} ms, DuckDB {duck_binding_s * 1000:.0f} ms, "
          f"ratio {binding_s / duck_binding_s:.2f}")
    last = first_day + timedelta(days=29)
    compare(engine, con, "30-day funnel per branch (incl. binding figures)", first_day, last, None)
    compare(engine, con, "days 11-20 per branch", first_day + timedelta(days=10), first_day + timedelta(days=19), None)
    compare(engine, con, "30 days, mini program only, per branch", first_day, last, "miniprogram")
    compare(engine, con, "20 days of history + 10 of the 30, per branch", first_day - timedelta(days=20),
            first_day + timedelta(days=9), None)
    compare_drill_down(engine, con, first_day, last, 1)
    print(f"  30-day chain funnel (KPI tiles): console {overall_s * 1000:.0f} ms")
    print(f"  intake: {single:,.0f} events/s (1 client), {four:,.0f} events/s (4 clients) into "
          f"{args.events:,} stored events; target 5,000")
    print(f"  roll-up: all 30 days {full['seconds']:.1f} s ({full['facts']:,} facts, peak {full['peak_mb']:,.0f} MB); "
          f"usual run {usual['seconds']:.1f} s ({usual['facts']:,} facts); one late event {late_run.seconds:.2f} s; "
          f"history file import {imp.seconds:.1f} s + roll-up {history_run['seconds']:.1f} s "
          f"(peak {history_run['peak_mb']:,.0f} MB)")


if __name__ == "__main__":
    main()

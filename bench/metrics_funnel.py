"""Funnel benchmark at chain scale: 50,000 stores, 10,000,000 events over 30 days.

Prints
  1. intake throughput through POST /api/v1/events (uvicorn on loopback, batches
     of 1,000, one client and four concurrent clients) into the loaded database;
  2. the roll-up: a full rebuild of 30 days, and the sidecar's usual run (today);
  3. the page's queries (binding rate per branch; 30-day funnel per branch) beside
     DuckDB computing the same definitions over the same raw events, the ratio,
     and whether every figure is equal.

The raw events go to DuckDB as they are; the console's database receives the
facts its intake derives from them (funnel_activity, the same code path's
output, bulk-loaded for time) and is then rolled up by core.metrics.
Usage: .venv/bin/python bench/metrics_funnel.py [--events N] [--stores N]
"""

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlmodel import Session  # noqa: E402

from core import metrics, tracking  # noqa: E402
from core.auth import api_keys  # noqa: E402
from core.config import get_settings  # noqa: E402
from core.permissions import system_actor  # noqa: E402
from db.engine import get_engine  # noqa: E402
from db.migrate import upgrade_to_head  # noqa: E402
from tests.support.postgres import free_port  # noqa: E402

SYSTEM = system_actor("bench")
SHANGHAI = 8 * 3600  # Asia/Shanghai has had no daylight saving since 1991
STEPS = np.array(["order_result_view", "entry_click", "guide_view", "add_click", "jump_fail"])
STEP_SHARE = [0.56, 0.16, 0.14, 0.11, 0.03]
PLATFORMS = np.array(["app", "miniprogram", "h5"])
PLATFORM_SHARE = [0.6, 0.3, 0.1]


def timed(label: str):
    class Timer:
        def __enter__(self):
            self.start = time.perf_counter()
            return self

        def __exit__(self, *exc):
            self.seconds = time.perf_counter() - self.start
            print(f"  {label}: {self.seconds:.1f} s", flush=True)
    return Timer()


def best_of(fn, runs: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


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


def make_events(n: int, stores: pd.DataFrame, first_day: date, days: int, rng: np.random.Generator) -> pd.DataFrame:
    """Messy on purpose: users come back on other days and at other stores."""
    pool = max(1000, n // 4)
    user = (rng.random(n) ** 1.6 * pool).astype(np.int64)
    home = user % len(stores)
    elsewhere = rng.random(n) < 0.15
    store_index = np.where(elsewhere, rng.integers(0, len(stores), n), home)
    day0 = int(datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC).timestamp()) - SHANGHAI
    seconds = day0 + rng.integers(0, days, n) * 86400 + rng.integers(0, 86400, n)
    frame = pd.DataFrame({
        "event": STEPS[rng.choice(len(STEPS), n, p=STEP_SHARE)],
        "occurred_s": seconds,
        "user_key": "u" + pd.Series(user).astype(str),
        "store_id": stores.id.to_numpy()[store_index],
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
                         "day": (adds.occurred_s + 60 + SHANGHAI) // 86400})


def load_activity(conn: sqlite3.Connection, events: pd.DataFrame, adds: pd.DataFrame) -> int:
    funnel = events[events.event != "jump_fail"]
    rows = pd.concat([
        pd.DataFrame({"step": funnel.event, "user_key": funnel.user_key, "day": funnel.day,
                      "store_id": funnel.store_id, "platform": funnel.platform, "branch_id": funnel.branch_id}),
        pd.DataFrame({"step": "added", "user_key": adds.external, "day": adds.day, "store_id": adds.store_id,
                      "platform": "", "branch_id": adds.branch_id}),
    ]).drop_duplicates(["step", "user_key", "day", "store_id", "platform"])
    rows = rows.sort_values(["step", "user_key", "day", "store_id", "platform"])
    for name in ("ix_funnel_activity_day", "ix_funnel_activity_branch_day", "ix_funnel_activity_store_day"):
        conn.execute(f"DROP INDEX {name}")
    conn.executemany("INSERT INTO funnel_activity (step, user_key, day, store_id, platform, branch_id) "
                     "VALUES (?, ?, ?, ?, ?, ?)", rows.itertuples(index=False, name=None))
    conn.execute("CREATE INDEX ix_funnel_activity_day ON funnel_activity (day, step, user_key)")
    conn.execute("CREATE INDEX ix_funnel_activity_branch_day ON funnel_activity (branch_id, day)")
    conn.execute("CREATE INDEX ix_funnel_activity_store_day ON funnel_activity (store_id, day)")
    conn.executemany("INSERT INTO funnel_dirty_day (day, version) VALUES (?, 1)",
                     [(int(d),) for d in sorted(rows.day.unique())])
    conn.commit()
    conn.execute("ANALYZE")
    return len(rows)


def intake(url: str, key: str, stores: pd.DataFrame, batches: int, clients: int, tag: str) -> float:
    crm = stores.crm_store_id.to_numpy()
    now = datetime.now(UTC)
    rng = np.random.default_rng(7)

    def batch(number: int) -> list[dict]:
        picks = rng.integers(0, len(crm), 1000)
        return [{"event_id": f"{tag}-{number}-{i}", "event": str(STEPS[i % 4]), "occurred_at":
                 (now - timedelta(seconds=int(i))).isoformat(), "user_key": f"i{number % 500}-{i}",
                 "crm_store_id": str(crm[picks[i]]), "platform": "app", "order_id": f"O{number}{i}"}
                for i in range(1000)]

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


BINDING_SQL = """
    SELECT s.branch_id, count(*) FILTER (WHERE s.status = 'open'),
           count(b.store_id) FILTER (WHERE s.status = 'open')
    FROM stores s LEFT JOIN bindings b ON b.store_id = s.id AND b.ended_at IS NULL GROUP BY s.branch_id"""


def duckdb_figures(con: duckdb.DuckDBPyConnection, start_s: int, end_s: int) -> dict:
    """The DESIGN.md definitions straight over the raw events and stores."""
    binding = con.execute(BINDING_SQL).fetchall()
    funnel = con.execute("""
        SELECT s.branch_id, e.event, count(DISTINCT e.user_key)
        FROM events e JOIN stores s ON s.id = e.store_id
        WHERE e.occurred_s >= ? AND e.occurred_s < ? AND e.event <> 'jump_fail'
        GROUP BY ALL
        UNION ALL
        SELECT s.branch_id, 'added', count(DISTINCT a.external)
        FROM adds a JOIN stores s ON s.id = a.store_id
        WHERE a.occurred_s >= ? AND a.occurred_s < ? GROUP BY ALL""", [start_s, end_s, start_s, end_s]).fetchall()
    result: dict[int, dict] = {b: {"open_stores": o, "bound_stores": k} for b, o, k in binding}
    for branch_id, step, users in funnel:
        result[branch_id][step] = users
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--stores", type=int, default=50_000)
    parser.add_argument("--branches", type=int, default=100)
    parser.add_argument("--intake-batches", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(20261123)
    workdir = Path(tempfile.mkdtemp(prefix="swc-bench-metrics-"))
    url = f"sqlite:///{workdir / 'console.db'}"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("CONSOLE_SECRET_KEY", "bench")
    get_settings.cache_clear()
    print(f"funnel benchmark: {args.events:,} events, 30 days, {args.stores:,} stores, {args.branches} branches")
    upgrade_to_head(url)
    conn = sqlite3.connect(workdir / "console.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    today = datetime.now(UTC).astimezone().date()
    first_day = today - timedelta(days=30)  # the 30 days before today; intake goes to today
    with timed("org (branches, stores, accounts, bindings)"):
        stores = build_org(conn, args.stores, args.branches, rng)
    with timed("generate raw events"):
        events = make_events(args.events, stores, first_day, 30, rng)
        adds = make_adds(events, rng)
    with timed("bulk-load derived funnel facts"):
        facts = load_activity(conn, events, adds)
    print(f"  funnel facts: {facts:,} from {len(events):,} events and {len(adds):,} added customers")
    conn.close()

    engine = get_engine(url)
    with Session(engine) as session, timed("roll-up, full rebuild of 30 days") as full:
        figures = metrics.refresh_rollup(session=session)
        session.commit()
    print(f"  roll-up rows: {figures['rows']:,}")

    with Session(engine) as session:
        _row, key = api_keys.create_api_key(session=session, actor=SYSTEM, name="bench")
        session.commit()
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
        single = intake(base, key, stores, args.intake_batches, 1, "one")
        print(f"  intake, 1 client: {single:,.0f} events/s")
        four = intake(base, key, stores, args.intake_batches, 4, "four")
        print(f"  intake, 4 clients: {four:,.0f} events/s")
    finally:
        server.terminate()
        server.wait(timeout=30)
    with Session(engine) as session, timed("roll-up, the sidecar's usual run (today's new facts)") as usual:
        metrics.refresh_rollup(session=session)
        session.commit()

    start_s = int(datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC).timestamp()) - SHANGHAI
    end_s = start_s + 30 * 86400
    filters = metrics.MetricsFilter(first_day, first_day + timedelta(days=29))
    with Session(engine) as session:
        from core.stores import branch_summaries

        binding_s, _ = best_of(lambda: branch_summaries(session=session, actor=SYSTEM))
        funnel_s, rows = best_of(lambda: metrics.by_branch(session=session, actor=SYSTEM, filters=filters))
        overall_s, _ = best_of(lambda: metrics.overall(session=session, actor=SYSTEM, filters=filters))

    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.register("events_df", events[["event", "occurred_s", "user_key", "store_id"]])
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
    duck_funnel_s, duck = best_of(lambda: duckdb_figures(con, start_s, end_s))

    ours = {row.branch_id: {"open_stores": row.open_stores, "bound_stores": row.bound_stores,
                            **{step: row.funnel.count(step) for step in tracking.FUNNEL_STEPS}} for row in rows}
    mismatches = [(b, k, ours[b].get(k), v) for b, figures in duck.items() for k, v in figures.items()
                  if ours[b].get(k) != v]
    print("results")
    print(f"  binding rate per branch: console {binding_s * 1000:.0f} ms, DuckDB {duck_binding_s * 1000:.0f} ms, "
          f"ratio {binding_s / duck_binding_s:.2f}")
    print(f"  30-day funnel per branch (incl. binding rate): console {funnel_s * 1000:.0f} ms, "
          f"DuckDB {duck_funnel_s * 1000:.0f} ms, ratio {funnel_s / duck_funnel_s:.2f}")
    print(f"  30-day chain funnel (KPI tiles): console {overall_s * 1000:.0f} ms")
    print(f"  intake: {single:,.0f} events/s (1 client), {four:,.0f} events/s (4 clients); target 5,000")
    print(f"  roll-up: full 30 days {full.seconds:.1f} s, usual run {usual.seconds:.1f} s")
    print(f"  figures equal to DuckDB's for every branch and step: {not mismatches}"
          + ("" if not mismatches else f" — {mismatches[:5]}"))


if __name__ == "__main__":
    main()

"""Every page as each role at chain scale, through AppTest (the server side of a
rerun): 50,000 stores and accounts (85 % of the open stores bound), 10,000,000
tracking events over 30 days (rolled up), a week of hourly count snapshots per
account, a year of capacity alerts with their deliveries, a year of audit rows,
30 days of sidecar job runs at the risk-first cadence.

Prints, per role and page, the first open (the page switched to) and the slowest
of `--reruns` reruns; target < 1 s each. 导流效果 is measured twice: as it opens
(the store ranking off) and as `funnel+ranking`, the ranking switched on: its first
run counts the ranking (on request, with a spinner), the reruns show it as kept.
Before each role's 容量监控, each account's 7-day growth is worked out, as the
sidecar's capacity.growth job does every few minutes; its time is printed.

    .venv/bin/python bench/pages_scale.py [--data /tmp/scale-pages/console.db] [--rebuild]

The data set takes a long while to build (the roll-up of 10 M events alone is
minutes), so it is built once into `--data` and reused; the schema is brought to
head before each run.
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.metrics_funnel import build_org, load_events, load_facts, make_adds, make_events  # noqa: E402

ROLES = ["hq_admin", "hq_operator", "branch_manager", "viewer"]
PASSWORD = "Bench-pass-2026"
ROLL_UP = """
import json, time
from sqlmodel import Session
from core.funnel import rollup
from db.engine import get_engine
start = time.perf_counter()
with Session(get_engine()) as session:
    facts = rollup.refresh_rollup(session=session)["facts"]
print(json.dumps({"facts": facts, "seconds": time.perf_counter() - start}))
"""


def step(label: str):
    class Step:
        def __enter__(self):
            self.start = time.perf_counter()
            print(f"{label} …", flush=True)

        def __exit__(self, *exc):
            print(f"  {label}: {time.perf_counter() - self.start:.1f} s", flush=True)
    return Step()


def stamp(values: np.ndarray) -> list[str]:
    """Seconds since the epoch as the naive-UTC text SQLAlchemy stores on SQLite."""
    return [datetime.fromtimestamp(v, UTC).strftime("%Y-%m-%d %H:%M:%S.000000") for v in values.tolist()]


def build(path: Path, stores: int, events: int) -> None:
    from db.migrate import upgrade_to_head

    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    url = f"sqlite:///{path}"
    upgrade_to_head(url)
    rng = np.random.default_rng(20261203)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    now = int(time.time())
    today = datetime.now(UTC).date()
    with step("org: 100 branches, stores, accounts, bindings"):
        org = build_org(conn, stores, 100, rng)
        # Counts spread over the levels, last listed within the interval; 3 % of them near warn.
        counts = rng.integers(0, 4000, stores)
        near = rng.random(stores) < 0.03
        counts[near] = rng.integers(3100, 5001, near.sum())
        conn.executemany("UPDATE account SET customer_count = ?, count_synced_at = ? WHERE id = ?",
                         zip(counts.tolist(), stamp(now - rng.integers(0, 600, stores)),
                             range(1, stores + 1), strict=True))
        conn.commit()
    with step(f"{events:,} tracking events over 30 days and their funnel facts"):
        raw = make_events(events, org, today - timedelta(days=30), 30, rng, "e")
        load_events(conn, raw)
        load_facts(conn, raw, make_adds(raw, rng))
        del raw
    with step("count snapshots: hourly for 7 days per account"):
        hours = 7 * 24
        for hour in range(hours):
            taken = stamp(np.array([now - (hours - hour) * 3600]))[0]
            grown = np.maximum(0, counts - (hours - hour) * rng.integers(0, 3, stores))
            conn.executemany("INSERT INTO count_snapshot (account_id, customer_count, taken_at) VALUES (?, ?, ?)",
                             zip(range(1, stores + 1), grown.tolist(), [taken] * stores, strict=True))
        conn.commit()
    with step("a year of capacity alerts (40 a day) with their deliveries"):
        conn.execute("INSERT INTO alert_channel (name, kind, url, enabled, created_at, version) "
                     "VALUES ('总部群', 'wecom', 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x', 1, ?, 1)",
                     (stamp(np.array([now]))[0],))
        n = 365 * 40
        opened = np.sort(now - rng.integers(0, 365 * 86400, n))
        account = rng.integers(1, stores + 1, n)
        level = rng.choice(["warn", "critical", "full"], n, p=[0.6, 0.3, 0.1])
        pct = np.select([level == "warn", level == "critical"], [70, 90], 100)
        still_open = opened > now - 3 * 86400
        # At most one open episode per account and level.
        account[still_open] = rng.choice(stores, still_open.sum(), replace=False) + 1
        closed = np.where(still_open, 0, opened + rng.integers(3600, 20 * 86400, n))
        closed_text = [None if c == 0 else s for c, s in zip(closed.tolist(), stamp(np.maximum(closed, 0)),
                                                                   strict=True)]
        branch = org.branch_id.to_numpy()[account - 1]
        opened_text = stamp(opened)
        conn.executemany(
            "INSERT INTO capacity_alert (account_id, level, level_pct, branch_id, customer_count, capacity_limit, "
            "opened_at, closed_at, notified, last_notified_at, notify_count, version) "
            "VALUES (?, ?, ?, ?, ?, 5000, ?, ?, 1, ?, 1, 1)",
            zip(account.tolist(), level.tolist(), pct.tolist(), branch.tolist(), (pct * 50).tolist(), opened_text,
                closed_text, opened_text, strict=True))
        conn.executemany(
            "INSERT INTO alert_delivery (alert_id, channel_id, text, status, attempts, created_at, next_attempt_at, "
            "retry_until, sent_at, version) VALUES (?, 1, ?, 'sent', 1, ?, ?, ?, ?, 1)",
            ((i + 1, f"客服{a:06d}(账号:kf{a:06d})客户容量已达到{p}%,请及时处理。", t, t, t, t)
             for i, (a, p, t) in enumerate(zip(account.tolist(), pct.tolist(), opened_text, strict=True))))
        conn.commit()
    with step("a year of audit rows (3,000 a day)"):
        n = 365 * 3000
        at = stamp(np.sort(now - rng.integers(0, 365 * 86400, n)))
        store = rng.integers(1, stores + 1, n)
        action = rng.choice(["binding.show", "binding.hide", "binding.create", "account.update", "setting.update"], n)
        conn.executemany(
            "INSERT INTO audit_log (at, actor_name, action, entity_type, entity_id, branch_id, before_json, "
            "after_json) VALUES (?, 'operator', ?, 'binding', ?, ?, '{\"shown\": false}', '{\"shown\": true}')",
            zip(at, action.tolist(), store.astype(str).tolist(), org.branch_id.to_numpy()[store - 1].tolist(),
                strict=True))
        conn.commit()
    with step("30 days of sidecar job runs (sync and evaluate every 15 s, deliver every 30 s)"):
        for job_id, every in [("capacity.sync_counts", 15), ("capacity.evaluate", 15), ("alerts.deliver", 30)]:
            starts = np.arange(now - 30 * 86400, now, every)
            texts = stamp(starts)
            conn.executemany("INSERT INTO jobrun (job_id, holder, started_at, finished_at, outcome, figures_json) "
                             "VALUES (?, 'bench', ?, ?, 'ok', '{\"accounts\": 2500}')",
                             ((job_id, s, s) for s in texts))
        conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    with step("roll-up of the funnel facts (own process)"):
        subprocess.run([sys.executable, "-c", ROLL_UP], cwd=ROOT, check=True,
                       env={**os.environ, "DATABASE_URL": url})
    (path.parent / "built.json").write_text(json.dumps({"stores": stores, "events": events,
                                                        "built_at": datetime.now(UTC).isoformat()}))


def users(url: str) -> dict[str, str]:
    """A user per role (the branch manager of the first branch) with a real session token."""
    from sqlmodel import Session, select

    from core.auth import sessions
    from core.auth.passwords import hash_password
    from db.engine import get_engine
    from db.models import User

    tokens = {}
    with Session(get_engine(url)) as session:
        for role in ROLES:
            user = session.exec(select(User).where(User.username == f"bench_{role}")).first()
            if user is None:
                session.add(User(username=f"bench_{role}", display_name=role, role=role,
                                 branch_id=1 if role == "branch_manager" else None,
                                 password_hash=hash_password(PASSWORD)))
                session.commit()
            result = sessions.log_in(session=session, username=f"bench_{role}", password=PASSWORD)
            session.commit()
            assert result.ok, result.error_key
            tokens[role] = result.token
    return tokens


def keep_growth(url: str) -> None:
    """What the sidecar's capacity.growth job keeps for 容量监控, timed."""
    from sqlmodel import Session

    from core.capacity import growth
    from db.engine import get_engine

    with Session(get_engine(url)) as session:
        started = time.perf_counter()
        accounts = growth.refresh(session=session)
        session.commit()
    print(f"capacity.growth (every {growth.REFRESH.seconds // 60} min in the sidecar): {accounts:,} accounts in "
          f"{time.perf_counter() - started:.2f} s", flush=True)


def measure(tokens: dict[str, str], reruns: int, only: set[str] | None) -> list[tuple[str, str, float, float]]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    import console.ui.context as context
    from console.navigation import PAGES
    from core.auth.permissions import GRANTS, Role

    app = str(ROOT / "console" / "app.py")
    results = []
    for role in ROLES:
        context.read_session_token = lambda token=tokens[role]: token
        st.cache_resource.clear()
        variants = [(spec, Path(spec.path).stem, {}) for spec in PAGES]
        variants += [(spec, "funnel+ranking", {"funnel_rank_show": True}) for spec in PAGES
                     if Path(spec.path).stem == "funnel"]
        for spec, name, state in variants:
            if Role(role) not in GRANTS[spec.capability] or (only and name not in only):
                continue
            if name == "capacity":
                keep_growth(os.environ["DATABASE_URL"])  # as the sidecar keeps it, every few minutes
            at = AppTest.from_file(app, default_timeout=120)
            at.run()
            at.switch_page(spec.path)
            if state:
                at.run()
                for key, value in state.items():
                    at.session_state[key] = value
            started = time.perf_counter()
            at.run()
            first = time.perf_counter() - started
            if at.exception:
                print(f"  {role} {name}: {at.exception[0].message[:300]}", flush=True)
            slowest = 0.0
            for _ in range(reruns):
                started = time.perf_counter()
                at.run()
                slowest = max(slowest, time.perf_counter() - started)
            results.append((role, name, first, slowest))
            print(f"  {role:15s} {name:15s} first {first:6.2f} s   slowest rerun {slowest:6.2f} s", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("/tmp/scale-pages/console.db"))
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--stores", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--reruns", type=int, default=3)
    parser.add_argument("--page", action="append",
                        help="only these pages (file stem), e.g. capacity; funnel+ranking for the ranking")
    args = parser.parse_args()
    url = f"sqlite:///{args.data}"
    os.environ.update(DATABASE_URL=url, CONSOLE_SECRET_KEY="bench")
    if args.rebuild or not (args.data.parent / "built.json").exists():
        build(args.data, args.stores, args.events)
    if args.build_only:
        return 0
    from db.migrate import upgrade_to_head

    upgrade_to_head(url)
    print(f"data: {json.loads((args.data.parent / 'built.json').read_text())}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    results = measure(users(url), args.reruns, set(args.page) if args.page else None)
    over = [(role, page, round(max(first, slowest), 2)) for role, page, first, slowest in results
            if max(first, slowest) >= 1.0]
    print(f"pages ≥ 1 s: {over or 'none'}; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

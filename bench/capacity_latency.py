"""Alert latency at chain scale, in real time: a chain of 100,000 accounts (5 % within
the band below the warn level) against the WeCom simulator limited to 10,000
calls/min per API, with the real sidecar (scheduler.py's Sidecar, its APScheduler
loop and lease) running the count sync, the evaluation and the delivery.

While it runs, accounts near the level cross it in WeCom (the simulator) at a
steady rate; each crossing's latency is the time from the crossing to the robot
message naming the account in the simulator's inbox. Prints p50/p95/max latency
(target p95 ≤ 90 s), the most `externalcontact/list` calls in any 60 seconds (the
simulator's own window; target ≤ the configured pace) and 45009 answers, and
how often accounts were listed: watched accounts about every minute, every other
account never twice within the interval.

    .venv/bin/python bench/capacity_latency.py [--accounts 100000] [--near 0.05] [--minutes 12]

The sidecar runs in its own process with the jobs this chain consists of
(capacity.sync_counts → capacity.evaluate → alerts.deliver); the member sync,
contact codes, standby switch and funnel jobs are left out, as they use other
APIs and would only take turns. The simulator runs in this process.
"""

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LIMIT = 5000
SIDECAR = """
import logging, sys
import scheduler
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
sidecar = scheduler.Sidecar()
sidecar.specs = {job_id: spec for job_id, spec in sidecar.specs.items() if job_id in sys.argv[1:]}
sys.exit(sidecar.run_forever())
"""
JOBS = ["capacity.sync_counts", "capacity.evaluate", "alerts.deliver"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--near", type=float, default=0.05, help="share of accounts within the band below warn")
    parser.add_argument("--limit", type=int, default=10_000, help="simulator calls/min per API")
    parser.add_argument("--pace", type=int, default=9_900, help="wecom.calls_per_minute")
    parser.add_argument("--interval", type=int, default=600, help="CAPACITY_SYNC_INTERVAL_SECONDS")
    parser.add_argument("--minutes", type=float, default=12, help="how long accounts keep crossing")
    parser.add_argument("--crossings-per-minute", type=float, default=10, help="below the robot's 20 a minute")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    url = f"sqlite:///{workdir / 'bench.db'}"
    corp, secret = "wwbench", "bench-secret"
    os.environ.update(DATABASE_URL=url, WECOM_CORP_ID=corp, WECOM_SECRET=secret,
                      CAPACITY_SYNC_INTERVAL_SECONDS=str(args.interval), ALERT_ALLOWED_HOSTS="127.0.0.1")

    from sqlalchemy import insert
    from sqlmodel import Session

    from base.timeutil import utcnow
    from db.engine import get_engine
    from db.migrate import upgrade_to_head
    from db.models import Account, AlertChannel, SettingOverride
    from demo.simulator import WeComSimulator

    class CountingSimulator(WeComSimulator):
        """Records when each account was listed."""

        def __init__(self, **options) -> None:
            super().__init__(**options)
            self.listed: dict[str, list[float]] = defaultdict(list)

        def api(self, api, query, body=None):
            answer = super().api(api, query, body)
            if api == "externalcontact/list" and answer.get("errcode") == 0:
                self.listed[query.get("userid", "").lower()].append(time.time())
            return answer

    upgrade_to_head(url)
    engine = get_engine(url)
    rng = random.Random(14)
    near_count = int(args.accounts * args.near)
    warn_at = LIMIT * 70 // 100
    rows, near = [], []
    for n in range(args.accounts):
        userid = f"acct{n:06d}"
        if n % round(1 / args.near) == 0 and len(near) < near_count:
            # 62–69.9 %: within 10 points below warn, listed every minute, last listed within the minute.
            count, age = rng.randint(LIMIT * 62 // 100, warn_at - 10), rng.uniform(0, 60)
            near.append(userid)
        else:
            # Far from every level, last listed at some point of the interval (the steady state).
            count, age = rng.randint(0, LIMIT * 55 // 100), rng.uniform(0, args.interval)
        rows.append({"userid": userid, "name": f"门店{n:06d}客服", "capacity_limit": LIMIT, "status": "active",
                     "customer_count": count, "count_synced_at": age, "version": 1})
    sim = CountingSimulator(corp_id=corp, secret=secret, per_minute=args.limit).start()
    sim.set_customers({row["userid"]: row["customer_count"] for row in rows})
    sim.set_limits({row["userid"]: LIMIT for row in rows})
    # The sync times last: the sidecar starts right after, in the steady state they describe.
    now = utcnow()
    for row in rows:
        row["count_synced_at"] = now - timedelta(seconds=row["count_synced_at"])
    with Session(engine) as session:
        session.exec(insert(Account), params=rows)
        session.add(SettingOverride(key="wecom.calls_per_minute", value_json=str(args.pace)))
        session.add(AlertChannel(name="总部群", kind="wecom", url=f"{sim.base_url}/cgi-bin/webhook/send?key=hq"))
        session.commit()
    far = {row["userid"] for row in rows} - set(near)
    del rows

    log_path = workdir / "sidecar.log"
    sidecar = subprocess.Popen([sys.executable, "-c", SIDECAR, *JOBS], cwd=ROOT, stdout=log_path.open("wb"),
                               stderr=subprocess.STDOUT,
                               env={**os.environ, "WECOM_API_BASE": sim.base_url})
    crossings: dict[str, float] = {}
    window_peak = {"calls": 0}
    stop = threading.Event()

    def watch_window() -> None:
        # The simulator keeps the calls of the last 60 s per API: the busiest minute seen.
        while not stop.wait(0.5):
            with sim._lock:
                window_peak["calls"] = max(window_peak["calls"], len(sim._windows["externalcontact/list"]))

    threading.Thread(target=watch_window, daemon=True).start()
    started = time.time()
    print(f"{args.accounts:,} accounts ({len(near):,} near warn), simulator {args.limit:,} calls/min, "
          f"pace {args.pace:,}, interval {args.interval} s; sidecar log {log_path}", flush=True)
    try:
        time.sleep(60)  # the sidecar starts and settles into its ticks
        candidates = rng.sample(near, k=min(len(near), int(args.minutes * args.crossings_per_minute)))
        gap = 60 / args.crossings_per_minute
        for userid in candidates:
            # One more customer than the warn level in WeCom.
            sim.set_customers({userid: warn_at + rng.randint(0, 3)})
            crossings[userid] = time.time()
            time.sleep(gap)
        deadline = time.time() + 180
        while time.time() < deadline and len(delivered(sim, crossings)) < len(crossings):
            time.sleep(1)
    finally:
        stop.set()
        sidecar.terminate()
        sidecar.wait(timeout=120)
        elapsed = time.time() - started
        sim.stop()

    arrived = delivered(sim, crossings)
    latencies = sorted(arrived[userid] - crossings[userid] for userid in arrived)
    print(f"run {elapsed / 60:.1f} min; crossings {len(crossings)}, messages {len(arrived)}, "
          f"missing {len(crossings) - len(arrived)}")
    if latencies:
        p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
        print(f"crossing → robot message: p50 {statistics.median(latencies):.1f} s, p95 {p95:.1f} s, "
              f"max {latencies[-1]:.1f} s (target p95 ≤ 90 s)")
    calls = sim.calls["externalcontact/list"]
    print(f"externalcontact/list calls {calls:,} in {elapsed / 60:.1f} min ({calls / elapsed * 60:,.0f}/min on "
          f"average); busiest 60 s {window_peak['calls']:,} (pace {args.pace:,}, limit {args.limit:,}); "
          f"45009 answers {sim.answers[45009]}")
    gaps_near = [b - a for userid in near for a, b in zip(sim.listed[userid], sim.listed[userid][1:], strict=False)
                 if userid not in crossings]
    gaps_far = [b - a for userid in far for a, b in zip(sim.listed[userid], sim.listed[userid][1:], strict=False)]
    listed_far = sum(1 for userid in far if sim.listed[userid])
    if gaps_near:
        print(f"watched accounts: listed every {statistics.median(gaps_near):.1f} s (median), "
              f"{max(gaps_near):.1f} s at most")
    print(f"other accounts: {listed_far:,} of {len(far):,} listed during the run; listed twice: "
          f"{sum(1 for userid in far if len(sim.listed[userid]) > 1):,}; shortest gap "
          f"{min(gaps_far) if gaps_far else float('nan'):.1f} s (interval {args.interval} s)")
    return 0


def delivered(sim, crossings: dict[str, float]) -> dict[str, float]:
    """The first robot message naming each crossed account, by arrival time."""
    arrived: dict[str, float] = {}
    for message in sim.messages("wecom"):
        match = re.search(r"账号:(acct\d+)", message.text)
        if match and match.group(1) in crossings and match.group(1) not in arrived:
            arrived[match.group(1)] = message.received_at
    return arrived


if __name__ == "__main__":
    sys.exit(main())

"""One customer-count sync of 20,000 accounts against the WeCom simulator limited
to a fixed number of calls per minute per API.

Prints the cycle time ÷ (accounts ÷ limit) — target ≤ 1.10 with zero 45009
answers — and the sync process's CPU seconds per 1,000 accounts.

    .venv/bin/python bench/capacity_sync.py [--accounts 20000] [--limit 10000]

The simulator runs in its own process (as WeCom would), serving each account's
whole customer list (0–2,500 external userids) on every call; the client paces
at 99.5 % of the simulator's limit so that no 60-second window goes over it.
"""

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.simulated_wecom import fresh_database, simulator_client  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--limit", type=int, default=10_000, help="simulator calls/min per API")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    url = fresh_database("bench-capacity-")

    from sqlalchemy import insert
    from sqlmodel import Session

    from core.capacity.sync import sync_counts
    from db.engine import get_engine
    from db.models import Account

    engine = get_engine(url)
    rng = random.Random(5)
    with Session(engine) as session:
        session.exec(insert(Account), params=[
            {"userid": f"store{n:06d}", "name": f"门店{n:06d}客服", "capacity_limit": 5000, "status": "active",
             "customer_count": rng.randint(0, 2500), "version": 1} for n in range(args.accounts)])
        session.commit()

    with simulator_client(per_minute=args.limit, concurrency=args.concurrency) as client:
        cpu_before = time.process_time()
        started = time.monotonic()
        result = sync_counts(engine=engine, client=client, concurrency=args.concurrency)
        cycle = time.monotonic() - started
        cpu = time.process_time() - cpu_before

    ideal = args.accounts / args.limit * 60
    print(f"accounts {args.accounts:,}, simulator limit {args.limit:,} calls/min per API, "
          f"concurrency {args.concurrency}")
    print(f"synced {result.synced:,}, failed {result.failed}, snapshots {result.snapshots:,}")
    print(f"cycle time {cycle:.1f} s; accounts ÷ limit = {ideal:.1f} s; ratio {cycle / ideal:.3f} (target ≤ 1.10)")
    print(f"45009/45033 answers: {result.wecom['throttled']}; retries: {result.wecom['retries']}; "
          f"calls: {result.wecom['calls']:,}")
    print(f"CPU seconds per 1,000 accounts (sync process): {cpu / args.accounts * 1000:.2f}")
    return 0 if result.failed == 0 and result.wecom["throttled"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

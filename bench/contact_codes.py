"""Creating the contact codes of 50,000 bound stores against the WeCom simulator
limited to a fixed number of calls per minute per API.

Prints the wall time ÷ the floor (stores ÷ limit minutes; 50,000 ÷ 10,000 = 5 min)
— target ≤ 1.10 — and the count of 45009 answers (target 0), then runs the sync
again to show that nothing changed costs no WeCom call.

    .venv/bin/python bench/contact_codes.py [--stores 50000] [--limit 10000] [--concurrency 8]

The simulator runs in its own process (as WeCom would) and knows every bound
account; the client paces at 99.5 % of the simulator's limit, as the count
sync's benchmark does.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.simulated_wecom import fresh_database, simulator_client  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", type=int, default=50_000)
    parser.add_argument("--limit", type=int, default=10_000, help="simulator calls/min per API")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    url = fresh_database("bench-codes-")

    from sqlalchemy import insert
    from sqlmodel import Session, select

    from core.codes.sync import sync_codes
    from db.engine import get_engine
    from db.models import Account, Binding, Branch, Store

    engine = get_engine(url)
    with Session(engine) as session:
        session.add(Branch(code="B01", name="基准分公司"))
        session.commit()
        branch_id = session.exec(select(Branch.id)).one()
        session.exec(insert(Store), params=[
            {"crm_store_id": f"{n:06d}", "name": f"基准门店{n:06d}号（购物中心一楼东侧入口旁）", "branch_id": branch_id,
             "status": "open", "version": 1} for n in range(args.stores)])
        session.exec(insert(Account), params=[
            {"userid": f"store{n:06d}", "name": f"门店{n:06d}客服", "capacity_limit": 5000, "status": "active",
             "customer_count": 0, "version": 1} for n in range(args.stores)])
        stores = session.exec(select(Store.id).order_by(Store.id)).all()
        accounts = session.exec(select(Account.id).order_by(Account.id)).all()
        session.exec(insert(Binding), params=[
            {"store_id": store_id, "account_id": account_id, "shown": True, "version": 1}
            for store_id, account_id in zip(stores, accounts, strict=True)])
        session.commit()

    with simulator_client(per_minute=args.limit, concurrency=args.concurrency) as client:
        cpu_before = time.process_time()
        started = time.monotonic()
        result = sync_codes(engine=engine, client=client, concurrency=args.concurrency)
        wall = time.monotonic() - started
        cpu = time.process_time() - cpu_before
        calls_before = client.stats["calls"]
        again_started = time.monotonic()
        again = sync_codes(engine=engine, client=client, concurrency=args.concurrency)
        again_wall = time.monotonic() - again_started
        again_calls = client.stats["calls"] - calls_before

    floor = args.stores / args.limit * 60
    print(f"stores {args.stores:,}, simulator limit {args.limit:,} calls/min per API, concurrency {args.concurrency}")
    print(f"created {result.created:,}, failed {result.failed}, skipped {result.skipped}")
    print(f"wall time {wall:.1f} s; floor (stores ÷ limit) {floor:.1f} s; ratio {wall / floor:.3f} (target ≤ 1.10)")
    print(f"45009/45033 answers: {result.wecom['throttled']}; retries: {result.wecom['retries']}; "
          f"calls: {result.wecom['calls']:,}")
    print(f"CPU seconds per 1,000 codes (sync process: HTTP, JSON, SQLite): {cpu / args.stores * 1000:.2f}; "
          f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"second run with nothing changed: {again_wall:.2f} s, {again_calls} WeCom calls, created {again.created}")
    return 0 if result.failed == 0 and result.wecom["throttled"] == 0 and again_calls == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

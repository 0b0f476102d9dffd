"""Stores page at 50,000 stores: each query the page runs per rerun, in ms.

    .venv/bin/python bench/stores_paging.py [--stores 50000]

Builds a SQLite file with 50 branches, N stores (6 % closed) and a current
binding for 85 % of them, then times the stores page's queries (first page,
a deep page, a CRM-ID prefix search, a name search, the bound filter) and the
overview's figures. Target: every query well under 200 ms so a rerun feels instant.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402
from sqlmodel import Session  # noqa: E402

from base.timeutil import utcnow
from core import overview
from core.auth.permissions import SYSTEM
from core.directory import stores
from db.engine import get_engine  # noqa: E402
from db.migrate import upgrade_to_head  # noqa: E402
from db.models import Account, Binding, Branch, Store  # noqa: E402


def build(url: str, count: int) -> None:
    upgrade_to_head(url)
    engine = get_engine(url)
    now = utcnow()
    with Session(engine) as session:
        session.exec(insert(Branch), params=[{"code": f"B{b:03d}", "name": f"第{b}分公司", "created_at": now}
                                             for b in range(50)])
        session.exec(insert(Store), params=[{
            "crm_store_id": f"{i:07d}", "name": f"城市{i % 300}区{i % 17}号街门店{i}", "branch_id": 1 + i % 50,
            "status": "closed" if i % 16 == 0 else "open", "version": 1, "created_at": now, "updated_at": now,
        } for i in range(count)])
        session.exec(insert(Account), params=[{
            "userid": f"acct{i:07d}", "name": f"客服{i}", "capacity_limit": 5000, "status": "active",
            "customer_count": (i * 37) % 5200, "version": 1, "created_at": now, "updated_at": now,
        } for i in range(count)])
        session.exec(insert(Binding), params=[{
            "store_id": i + 1, "account_id": i + 1, "shown": i % 3 != 0, "started_at": now, "version": 1,
            "updated_at": now,
        } for i in range(count) if i % 16 != 0 and i % 7 != 0])
        session.commit()


def timed(label: str, func, repeat: int = 7) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    median = statistics.median(samples)
    print(f"{label:<44} median {median:8.1f} ms   max {max(samples):8.1f} ms")
    return median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        start = time.perf_counter()
        build(url, args.stores)
        print(f"built {args.stores:,} stores in {time.perf_counter() - start:.1f} s")
        engine = get_engine(url)
        with Session(engine) as session:
            def page(filters, offset=0):
                return lambda: stores.search_stores(session=session, actor=SYSTEM, filters=filters,
                                                    offset=offset, limit=50)

            figures = [
                timed("first page (50 rows + total)", page(stores.StoreFilter())),
                timed("page 500", page(stores.StoreFilter(), offset=24_950)),
                timed("CRM ID prefix search '00123'", page(stores.StoreFilter(search="00123"))),
                timed("name search '号街门店4999'", page(stores.StoreFilter(search="号街门店4999"))),
                timed("branch + open + unbound", page(stores.StoreFilter(branch_id=7, status="open", bound=False))),
                timed("branch summaries (binding rate)", lambda: stores.branch_summaries(session=session,
                                                                                        actor=SYSTEM)),
                timed("overview figures", lambda: overview.overview(session=session, actor=SYSTEM)),
            ]
        print(f"slowest query: {max(figures):.1f} ms")


if __name__ == "__main__":
    main()

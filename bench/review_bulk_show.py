"""Bindings page at 50,000 bindings: search/count per filter, and a bulk show
of 10,000 bindings (all or nothing, with the audit rows), in seconds.

    .venv/bin/python bench/review_bulk_show.py [--stores 50000] [--show 10000] [--database-url URL]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import Session, select  # noqa: E402

from bench.review_common import build  # noqa: E402
from core.auth.sessions import actor_for  # noqa: E402
from core.bindings import review
from db.engine import get_engine  # noqa: E402
from db.models import User  # noqa: E402


def timed(label: str, fn, repeat: int = 5):
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    print(f"  {label:<48} {best * 1000:8.1f} ms (best of {repeat})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", type=int, default=50_000)
    parser.add_argument("--show", type=int, default=10_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='swc-bench-')}/bench.db"
    start = time.perf_counter()
    build(url, args.stores)
    print(f"built {args.stores} stores/accounts/bindings on {url.split('://')[0]} in "
          f"{time.perf_counter() - start:.1f} s")
    engine = get_engine(url)
    with Session(engine) as session:
        actor = actor_for(session.exec(select(User)).one())
        print(f"bindings page (one page of 50 + total count) at {args.stores}:")
        for label, filters in [
            ("no filter", review.BindingFilter()),
            ("pending review, one branch", review.BindingFilter(review="pending", branch_id=3)),
            ("hidden flag", review.BindingFilter(shown=False)),
            ("usage band warn", review.BindingFilter(usage_band="warn")),
            ("entry: account full", review.BindingFilter(entry="account_full")),
            ("search CRM ID prefix '0123'", review.BindingFilter(search="0123")),
            ("search userid 'user004'", review.BindingFilter(search="user004")),
        ]:
            timed(label, lambda f=filters: review.search_bindings(session=session, actor=actor, filters=f,
                                                                  offset=100, limit=50))
        targets = review.matching_rows(session=session, actor=actor,
                                       filters=review.BindingFilter(entry="hidden"))[:args.show]
        versions = {s.binding_id: s.version for s in targets}
    with Session(engine) as session:
        start = time.perf_counter()
        result = review.set_shown(session=session, actor=actor, versions=versions, shown=True)
        session.commit()
        elapsed = time.perf_counter() - start
    print(f"bulk show of {len(versions)} bindings (checks, compare-and-set, audit, commit): {elapsed:.2f} s "
          f"({result.changed} changed)")


if __name__ == "__main__":
    main()

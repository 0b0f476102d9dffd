"""Event intake with and without the store ranking's index on funnel_activity
(migration 0017), on a copy of the pages data set (bench/pages_scale.py builds it:
10 M events): intake through POST /api/v1/events (uvicorn on loopback, batches of
1,000, 1 and 4 clients) first without the index, then with it again. The first
run on the fresh copy pays for a cold page cache; read the two in that light.

    .venv/bin/python bench/funnel_index_intake.py [--data /tmp/scale-pages-10m/console.db]

The copy goes to a temporary folder and is removed after; the data set itself is not changed.
"""

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INDEX = "ix_funnel_activity_step_store_user"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="/tmp/scale-pages-10m/console.db")
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    copy = Path(tempfile.mkdtemp(prefix="bench-index-")) / "console.db"
    shutil.copy(args.data, copy)
    url = f"sqlite:///{copy}"
    os.environ["DATABASE_URL"] = url

    import pandas as pd
    from sqlmodel import Session

    from bench.metrics_funnel import events_api, intake
    from core.auth import api_keys
    from core.auth.permissions import SYSTEM
    from db.engine import get_engine

    with Session(get_engine(url)) as session:
        _row, key = api_keys.create_api_key(session=session, actor=SYSTEM, name="bench-index")
        session.commit()
    with sqlite3.connect(copy) as conn:
        stores = pd.read_sql("SELECT crm_store_id FROM store", conn)
        columns = [row[2] for row in conn.execute(f"PRAGMA index_info({INDEX})")]
        conn.execute(f"DROP INDEX {INDEX}")
    for label, tag in (("without the index", "p"), ("with the index", "q")):
        if tag == "q":
            with sqlite3.connect(copy) as conn:
                conn.execute(f"CREATE INDEX {INDEX} ON funnel_activity ({', '.join(columns)})")
        with events_api() as base:
            one = intake(base, key, stores, args.batches, 1, tag + "o")
            four = intake(base, key, stores, args.batches, 4, tag + "f")
        print(f"{label}: 1 client {one:,.0f} events/s, 4 clients {four:,.0f} events/s; "
              f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    shutil.rmtree(copy.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())

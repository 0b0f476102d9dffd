"""Event intake and the WeCom callback while a big import commits (SQLite).

`python -m console import-stores` of a 99,000-store CRM list runs in its own
process, as an operator runs it, first creating every store, then again with
every store renamed and a tenth closed (their bindings end). Meanwhile this
process stores one API event batch (10 events, `intake.ingest_events`, as
POST /api/v1/events does) and one add-customer callback
(`contacts.record_contact_change`) every 50 ms and times each. Target: every
one answers within 1 s while the import runs.

Then `python -m console import-bindings` of a binding sheet of 50,000 open
stores runs the same way (an import run of its own kind), twice: every store
bound to a new account, then every store moved to another new account (换号).

    .venv/bin/python bench/import_lock.py [--stores 99000] [--bindings 50000]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402
from sqlmodel import Session  # noqa: E402

from core.auth.permissions import SYSTEM, system_actor  # noqa: E402
from core.auth.users import UserCreate, create_user  # noqa: E402
from core.funnel import contacts, intake  # noqa: E402
from db.engine import get_engine, session_scope  # noqa: E402
from db.migrate import upgrade_to_head  # noqa: E402
from db.models import Account, Binding, Branch, Store  # noqa: E402

ACTOR = system_actor("bench")


def store_list(path: Path, stores: int, renamed: bool) -> None:
    lines = ["分公司编码,分公司名称,CRM门店ID,门店名称,状态"]
    for i in range(stores):
        branch = i % 50
        closed = renamed and i % 10 == 0
        lines.append(f"B{branch:02d},分公司{branch:02d},{i:07d},门店{i}{'（新）' if renamed else ''},"
                     f"{'关闭' if closed else '营业'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")


def prepare(url: str, stores: int) -> None:
    """The probe's own branch, store and account, plus bindings for the
    stores the second import closes (created after the first import)."""
    engine = get_engine(url)
    with Session(engine) as session:
        branch = Branch(code="PROBE", name="探针")
        session.add(branch)
        session.flush()
        session.add(Store(crm_store_id="probe", name="探针门店", branch_id=branch.id, status="open"))
        session.add(Account(userid="probe", name="探针", capacity_limit=5000, status="active", customer_count=0))
        session.commit()


def bind_closing_stores(url: str, stores: int) -> None:
    engine = get_engine(url)
    with Session(engine) as session:
        ids = dict(session.execute(select(Store.crm_store_id, Store.id)).all())
        closing = [f"{i:07d}" for i in range(0, stores, 10)]
        session.execute(insert(Account), [{"userid": f"kf{crm}", "name": f"客服{crm}", "capacity_limit": 5000,
                                           "status": "active", "customer_count": 0, "version": 1}
                                          for crm in closing])
        accounts = dict(session.execute(select(Account.userid, Account.id)).all())
        session.execute(insert(Binding), [{"store_id": ids[crm], "account_id": accounts[f"kf{crm}"], "shown": True,
                                           "version": 1} for crm in closing])
        session.commit()


def binding_sheet(path: Path, stores: int, rows: int, prefix: str) -> None:
    """The first `rows` open stores, each to a new account named with `prefix`."""
    open_ones = [i for i in range(stores) if i % 10][:rows]
    lines = ["分公司编码,CRM门店ID,门店名称,企微账号,企微账号名称"]
    lines += [f"B{i % 50:02d},{i:07d},门店{i}（新）,{prefix}.{i},客服{i}" for i in open_ones]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")


def console_user(url: str) -> None:
    """The HQ user `import-bindings` acts as."""
    with Session(get_engine(url)) as session:
        create_user(session=session, actor=SYSTEM, data=UserCreate(username="bench_hq", role="hq_admin",
                                                                   password="bench-password-1"))
        session.commit()


def probe(stop: threading.Event, timings: dict[str, list[float]]) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        now = datetime.now(UTC)
        events = [{"event_id": f"p{n}-{k}", "event": "order_result_view", "occurred_at": now.isoformat(),
                   "user_key": f"u{k}", "crm_store_id": "probe", "platform": "app"} for k in range(10)]
        started = time.perf_counter()
        with session_scope() as session:
            intake.ingest_events(session=session, actor=ACTOR, events=events)
        timings["intake"].append(time.perf_counter() - started)
        change = contacts.ContactChange(corp_id="bench", change_type=contacts.ADDED, userid="probe",
                                        external_userid=f"wm{n}", create_time=int((now - timedelta(seconds=1))
                                                                                 .timestamp()))
        started = time.perf_counter()
        with session_scope() as session:
            contacts.record_contact_change(session=session, actor=ACTOR, change=change)
        timings["callback"].append(time.perf_counter() - started)
        time.sleep(0.05)


def run_import(url: str, path: Path, *extra: str) -> tuple[float, dict[str, list[float]]]:
    timings: dict[str, list[float]] = {"intake": [], "callback": []}
    stop = threading.Event()
    thread = threading.Thread(target=probe, args=(stop, timings))
    thread.start()
    time.sleep(0.3)
    for values in timings.values():
        values.clear()  # only what the import meets
    started = time.perf_counter()
    command = list(extra) or ["import-stores"]
    done = subprocess.run([sys.executable, "-m", "console", command[0], str(path), *command[1:]], cwd=ROOT,
                          env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join()
    if done.returncode:
        sys.exit(f"import failed: {done.stderr}")
    print(done.stdout.strip())
    return elapsed, timings


def report(name: str, elapsed: float, timings: dict[str, list[float]]) -> None:
    print(f"{name}: import {elapsed:.1f} s")
    for kind, values in timings.items():
        values = sorted(values)
        print(f"  {kind}: {len(values)} calls, median {statistics.median(values) * 1000:.0f} ms, "
              f"p99 {values[int(len(values) * 0.99) - 1] * 1000:.0f} ms, max {values[-1] * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", type=int, default=99_000)
    parser.add_argument("--bindings", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        os.environ["DATABASE_URL"] = url
        upgrade_to_head(url)
        prepare(url, args.stores)
        first, second = Path(tmp) / "stores.csv", Path(tmp) / "stores-renamed.csv"
        store_list(first, args.stores, renamed=False)
        store_list(second, args.stores, renamed=True)
        report("new stores", *run_import(url, first))
        bind_closing_stores(url, args.stores)
        report("every store renamed, a tenth closed", *run_import(url, second))
        console_user(url)
        for prefix, what in (("bk", "every store bound to a new account"),
                             ("bk2", "every store moved to another new account (换号)")):
            sheet = Path(tmp) / f"bindings-{prefix}.csv"
            binding_sheet(sheet, args.stores, args.bindings, prefix)
            report(f"binding sheet of {args.bindings} rows, {what}",
                   *run_import(url, sheet, "import-bindings", "--user", "bench_hq", "--accept-unchecked"))


if __name__ == "__main__":
    main()

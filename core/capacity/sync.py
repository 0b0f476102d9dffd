"""Sync each active account's customer count from WeCom and keep snapshots.

One `externalcontact/list` call per account (there is no count API), paced by
the client's limiter and run concurrently. A WeCom error on one account is
stored on that account as an operator reason (a catalog key and WeCom's errcode
and errmsg); an error that stops the whole sync (bad secret, untrusted IP, API
not allowed) is stored on every account and fails the job.
"""

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from base.problems import problem
from base.timeutil import utcnow
from core.capacity.watch import SYNCED_STATUSES
from core.scheduling.lease import Fence, LeaseLost
from core.wecom.client import BUSY, NOT_IN_SCOPE_REASON, THROTTLED, WeComClient, WeComError
from db.models import Account, CountSnapshot

log = logging.getLogger("capacity")

# A flat line needs no new point every sync: an unchanged count is stored again
# only after this long, so the trend stays continuous and the table small.
SNAPSHOT_UNCHANGED_EVERY = timedelta(hours=1)
WRITE_BATCH = 500
# This many accounts in a row failing with busy/throttled/network means WeCom is
# down for us: stop rather than retry every remaining account.
MAX_CONSECUTIVE_FAILURES = 20


@dataclass
class SyncResult:
    accounts: int = 0
    synced: int = 0
    failed: int = 0
    skipped: int = 0
    snapshots: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    wecom: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"accounts": self.accounts, "synced": self.synced, "failed": self.failed, "skipped": self.skipped,
                "snapshots": self.snapshots, "seconds": round(self.seconds, 2), "reasons": self.reasons,
                **{f"wecom_{key}": value for key, value in self.wecom.items()}}


def sync_problem(key: str, errcode: int | None = None, errmsg: str = "") -> str:
    """What `Account.sync_error` holds: the operator reason's key with WeCom's
    errcode and errmsg (the pages put it into words)."""
    return problem(key, errcode=errcode, errmsg=errmsg[:300])


TRANSIENT = THROTTLED | {BUSY}


class SyncAborted(RuntimeError):
    pass


def sync_counts(*, engine: Engine, client: WeComClient, concurrency: int = 8,
                now: datetime | None = None, fence: Fence | None = None,
                only: Sequence[int] | None = None) -> SyncResult:
    """Sync every active account, or `only` those (listed in that order). With a
    `fence`, each batch is written only while the sidecar still holds its lease;
    once lost, the remaining calls are skipped and LeaseLost is raised."""
    started = time.monotonic()
    result = SyncResult()
    with Session(engine) as session:
        query = select(Account.id, Account.userid).where(col(Account.status).in_(SYNCED_STATUSES))
        if only is not None:
            query = query.where(col(Account.id).in_(only))
        accounts = list(session.exec(query).all())
    if only is not None:
        position = {account_id: number for number, account_id in enumerate(only)}
        accounts.sort(key=lambda row: position.get(row[0] or 0, 0))
    result.accounts = len(accounts)
    try:
        follow = {userid.lower() for userid in client.follow_users()}
    except WeComError as exc:
        # Nothing can be synced: every account shows the reason.
        with Session(engine) as session:
            session.exec(update(Account).where(col(Account.status).in_(SYNCED_STATUSES))
                         .values(sync_error=sync_problem(exc.reason_key, exc.errcode, exc.errmsg)))
            session.commit()
        raise SyncAborted(f"get_follow_user_list failed: {exc}") from exc

    in_scope: list[tuple[int, str]] = []
    outside: list[int] = []
    for account_id, userid in accounts:
        assert account_id is not None  # a loaded row has its key
        if userid.lower() in follow:
            in_scope.append((account_id, userid))
        else:
            outside.append(account_id)
    errors: dict[int, str] = {account_id: sync_problem(NOT_IN_SCOPE_REASON) for account_id in outside}
    counts: dict[int, int] = {}

    outage = threading.Event()
    lease_lost = threading.Event()
    streak = {"failures": 0}
    streak_lock = threading.Lock()

    def fetch(account_id: int, userid: str) -> tuple[int, int | None, WeComError | None]:
        if outage.is_set() or lease_lost.is_set():
            return account_id, None, None
        try:
            count = client.customer_count(userid)
        except WeComError as exc:
            if exc.errcode is None or exc.errcode in TRANSIENT:
                with streak_lock:
                    streak["failures"] += 1
                    if streak["failures"] >= MAX_CONSECUTIVE_FAILURES:
                        outage.set()
            return account_id, None, exc
        with streak_lock:
            streak["failures"] = 0
        return account_id, count, None

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="wecom-sync") as pool:
        futures = [pool.submit(fetch, account_id, userid) for account_id, userid in in_scope]
        try:
            for future in as_completed(futures):
                account_id, count, error = future.result()
                if error is not None:
                    errors[account_id] = sync_problem(error.reason_key, error.errcode, error.errmsg)
                    result.reasons[error.reason_key] = result.reasons.get(error.reason_key, 0) + 1
                elif count is None:
                    result.skipped += 1
                else:
                    counts[account_id] = count
                if len(counts) >= WRITE_BATCH:
                    result.snapshots += _write_counts(engine, counts, now, fence)
                    result.synced += len(counts)
                    counts = {}
        except LeaseLost:
            # The calls still queued return at once (the pool waits for them); nothing more is written.
            lease_lost.set()
            raise
    result.snapshots += _write_counts(engine, counts, now, fence)
    result.synced += len(counts)
    _write_errors(engine, errors, now, fence)
    result.failed = len(errors)
    if outside:
        result.reasons[NOT_IN_SCOPE_REASON] = len(outside)
    result.wecom = dict(client.stats)
    result.seconds = time.monotonic() - started
    if outage.is_set():
        raise SyncAborted(f"WeCom unavailable: {MAX_CONSECUTIVE_FAILURES} accounts failed in a row; "
                          f"{result.skipped} accounts not synced this time ({result.as_dict()})")
    return result


def _write_counts(engine: Engine, counts: dict[int, int], now: datetime | None, fence: Fence | None) -> int:
    """Counts, sync times and snapshots for a batch, in one transaction. Only the
    count columns are written, so an operator's concurrent edit of the limit or
    status is never overwritten."""
    if not counts:
        return 0
    now = now or utcnow()
    ids = list(counts)
    with Session(engine) as session:
        last = dict(session.exec(select(CountSnapshot.account_id, func.max(CountSnapshot.taken_at))
                                 .where(col(CountSnapshot.account_id).in_(ids))
                                 .group_by(col(CountSnapshot.account_id))).all())
        previous = dict(session.exec(select(Account.id, Account.customer_count)
                                     .where(col(Account.id).in_(ids))).all())
        session.exec(update(Account), params=[
            {"id": account_id, "customer_count": count, "count_synced_at": now, "sync_error": None, "updated_at": now}
            for account_id, count in counts.items()])
        snapshots = [{"account_id": account_id, "customer_count": count, "taken_at": now}
                     for account_id, count in counts.items()
                     if account_id not in last or previous.get(account_id) != count
                     or last[account_id] <= now - SNAPSHOT_UNCHANGED_EVERY]
        if snapshots:
            session.exec(insert(CountSnapshot), params=snapshots)
        if fence is not None:
            fence.check(session)
        session.commit()
    return len(snapshots)


def _write_errors(engine: Engine, errors: dict[int, str], now: datetime | None, fence: Fence | None) -> None:
    """Each account's reason, stamped: a sweep counts a failed attempt as done (core.capacity.sweep)."""
    if not errors:
        return
    now = now or utcnow()
    with Session(engine) as session:
        session.exec(update(Account), params=[{"id": account_id, "sync_error": reason, "updated_at": now}
                                              for account_id, reason in errors.items()])
        if fence is not None:
            fence.check(session)
        session.commit()


def purge_snapshots(*, engine: Engine, keep: timedelta, now: datetime | None = None) -> int:
    with Session(engine) as session:
        removed = session.exec(delete(CountSnapshot).where(
            col(CountSnapshot.taken_at) < (now or utcnow()) - keep)).rowcount
        session.commit()
    return removed

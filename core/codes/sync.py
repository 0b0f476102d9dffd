"""Keep every store's contact code in WeCom in line with its binding (`codes.sync`)
and check the codes against WeCom daily (`codes.reconcile`).

- A store that should have a code and has none gets one (`add_contact_way`, type
  2, scene 2); one whose code serves another member is updated behind the same
  config_id (`update_contact_way`); a closed store's code is deleted.
- Nothing is called for a code that is already right, so a run with nothing
  changed makes no WeCom call at all.
- Before `add_contact_way` is sent the row records `pending_since` (committed),
  and the answer clears it. A sidecar killed in between leaves the mark: the next
  run first looks for a way with that state made since then (`list_contact_way`
  + `get_contact_way`) and keeps it instead of making a second one.
- The database and WeCom never silently disagree: `userid` is the member WeCom
  confirmed. A refused update keeps the old one, stores WeCom's reason on the
  code (retried every run) and, while the code still sends customers to an
  account that is no longer the store's, opens one incident for the episode
  (on the alerts page, its message in the outbox, in the same transaction),
  closed once the code serves the store's account again.
- Calls are paced by the client's per-API limiter and run concurrently, like the
  count sync (core/capacity/sync.py).
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from base.problems import problem
from base.timeutil import utcnow
from core import settings_store
from core.alerts.incidents import close_incidents, open_incident
from core.codes.service import SKIP_VERIFY, remark_for, state_for
from core.scheduling.lease import Fence
from core.wecom.client import BUSY, CONTACT_WAY_NOT_FOUND, THROTTLED, WeComClient, WeComError
from db.models import Account, AlertLevel, Binding, ContactCode, Store, StoreStatus
from db.typed import select_columns
from i18n import t

log = logging.getLogger("codes")

CHUNK = 500
# This many calls in a row failing with busy/throttled/network means WeCom is
# down for us: stop rather than try every remaining store.
MAX_CONSECUTIVE_FAILURES = 20
# How far before a pending mark a way it may have made is looked for (clock skew).
ADOPT_MARGIN = timedelta(minutes=2)
TRANSIENT = THROTTLED | {BUSY}
T = TypeVar("T")


@dataclass
class CodeRow:
    """One store as the sync plans it."""

    store_id: int
    crm_store_id: str
    name: str
    branch_id: int
    open: bool
    code_id: int | None
    state: str | None
    config_id: str | None
    userid: str | None
    pending_since: datetime | None
    stale_alerted_at: datetime | None
    # The account the code should serve: the current binding's, else the last one's.
    desired: str | None
    # Whether `desired` is the store's current binding (not only its last one).
    current: bool

    @property
    def stale(self) -> bool:
        """The code sends customers to an account that is no longer the store's."""
        return self.current and self.desired is not None and (self.userid or "").lower() != self.desired.lower()


@dataclass
class CodeSyncResult:
    stores: int = 0
    created: int = 0
    adopted: int = 0
    updated: int = 0
    deleted: int = 0
    recreated: int = 0
    failed: int = 0
    skipped: int = 0
    alerts: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    wecom: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"stores": self.stores, "created": self.created, "adopted": self.adopted, "updated": self.updated,
                "deleted": self.deleted, "recreated": self.recreated, "failed": self.failed,
                "skipped": self.skipped, "alerts": self.alerts, "seconds": round(self.seconds, 2),
                "reasons": self.reasons, **{f"wecom_{key}": value for key, value in self.wecom.items()}}


class CodeSyncAborted(RuntimeError):
    pass


def load_rows(session: Session) -> list[CodeRow]:
    """Every store that has a code or has ever been bound, with the account its code should serve."""
    ranked = (select(col(Binding.store_id).label("store_id"), col(Account.userid).label("userid"),
                     col(Binding.ended_at).is_(None).label("current"),
                     func.row_number().over(partition_by=col(Binding.store_id),
                                            order_by=(col(Binding.ended_at).is_not(None),
                                                      col(Binding.ended_at).desc(), col(Binding.id).desc()))
                     .label("rank"))
              .join(Account, col(Account.id) == Binding.account_id).subquery())
    rows = session.exec(
        select_columns(Store.id, Store.crm_store_id, Store.name, Store.branch_id, Store.status, ContactCode.id,
               ContactCode.state, ContactCode.config_id, ContactCode.userid, ContactCode.pending_since,
               ContactCode.stale_alerted_at, ranked.c.userid, ranked.c.current)
        .select_from(Store)
        .join(ranked, (ranked.c.store_id == Store.id) & (ranked.c.rank == 1), isouter=True)
        .join(ContactCode, col(ContactCode.store_id) == Store.id, isouter=True)
        .where(ranked.c.store_id.is_not(None) | col(ContactCode.id).is_not(None))
        .order_by(col(Store.id))).all()
    return [CodeRow(store_id, crm, name, branch_id, status == StoreStatus.open, code_id, state, config_id,
                    userid, pending, alerted, desired, bool(current))
            for (store_id, crm, name, branch_id, status, code_id, state, config_id, userid, pending, alerted,
                 desired, current) in rows]


class _Calls:
    """Runs WeCom calls concurrently, chunk by chunk, stopping once WeCom looks
    down (the rows not tried then are counted in `skipped` and left out of the
    answers). The next chunk's calls are already queued while one chunk's
    outcome is written, so the writes never leave the rate limit unused."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.outage = threading.Event()
        self.skipped = 0
        self._failures = 0
        self._lock = threading.Lock()

    def _one(self, call: Callable[[CodeRow], T], row: CodeRow) -> tuple[CodeRow, T | None, WeComError | None] | None:
        if self.outage.is_set():
            with self._lock:
                self.skipped += 1
            return None
        try:
            answer = call(row)
        except WeComError as exc:
            if exc.errcode is None or exc.errcode in TRANSIENT:
                with self._lock:
                    self._failures += 1
                    if self._failures >= MAX_CONSECUTIVE_FAILURES:
                        self.outage.set()
            return row, None, exc
        with self._lock:
            self._failures = 0
        return row, answer, None

    def chunks(self, call: Callable[[CodeRow], T], rows: list[CodeRow],
               before: Callable[[list[CodeRow]], None] | None = None,
               ) -> Iterator[tuple[list[CodeRow], list[tuple[CodeRow, T | None, WeComError | None]]]]:
        """Each chunk of CHUNK rows with the answers of the rows tried; `before(chunk)`
        runs (and commits) before any of the chunk's calls is sent."""
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="wecom-codes")
        in_flight: deque[tuple[list[CodeRow], list[Future]]] = deque()
        try:
            for start in range(0, len(rows), CHUNK):
                chunk = rows[start:start + CHUNK]
                if before is not None:
                    before(chunk)
                in_flight.append((chunk, [pool.submit(self._one, call, row) for row in chunk]))
                if len(in_flight) > 1:
                    done_chunk, futures = in_flight.popleft()
                    yield done_chunk, [done for done in (f.result() for f in futures) if done is not None]
            while in_flight:
                done_chunk, futures = in_flight.popleft()
                yield done_chunk, [done for done in (f.result() for f in futures) if done is not None]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _stamp(at: datetime) -> int:
    return int(at.replace(tzinfo=UTC).timestamp())


def _wecom_problem(exc: WeComError) -> str:
    return problem(exc.reason_key, errcode=exc.errcode, errmsg=exc.errmsg[:300])


def _reason(exc: WeComError) -> str:
    return t(exc.reason_key, errcode=exc.errcode, errmsg=exc.errmsg[:300])


def _count(result: CodeSyncResult, exc: WeComError) -> None:
    result.failed += 1
    result.reasons[exc.reason_key] = result.reasons.get(exc.reason_key, 0) + 1


def _alert_stale(session: Session, row: CodeRow, error: WeComError, now: datetime) -> dict[str, Any]:
    """One alert per episode of a code still serving an account that is no longer
    the store's: an incident on the alerts page, its message in the outbox."""
    if not row.stale or row.stale_alerted_at is not None:
        return {}
    open_incident(session=session, level=AlertLevel.code_stale, store_id=row.store_id, branch_id=row.branch_id,
                  now=now, detail=problem("codes.incident.stale", old=row.userid or "-", new=row.desired,
                                          reason_key=error.reason_key, errcode=error.errcode,
                                          errmsg=error.errmsg[:300]),
                  text=t("codes.alert.stale", store=row.name, crm_store_id=row.crm_store_id, old=row.userid or "-",
                         new=row.desired, reason=_reason(error)))
    return {"stale_alerted_at": now}


def sync_codes(*, engine: Engine, client: WeComClient, concurrency: int = 8, fence: Fence | None = None,
               now: Callable[[], datetime] = utcnow) -> CodeSyncResult:
    started = time.monotonic()
    with Session(engine) as session:
        rows = load_rows(session)
        skip_verify = bool(settings_store.effective(session=session, key=SKIP_VERIFY))
    run = _SyncRun(engine, client, _Calls(concurrency), fence, now, skip_verify)
    run.result.stores = len(rows)
    # First the ways a killed run made (every marked store, also one closed or
    # unbound since: once adopted, its way is deleted or moved below like any other).
    waiting = [r for r in rows if r.pending_since is not None and not r.config_id]
    if waiting:
        run.adopt(waiting)
    recreate = run.update([r for r in rows if r.open and r.desired and r.config_id
                           and (r.userid or "").lower() != r.desired.lower()])
    run.delete([r for r in rows if not r.open and r.config_id])
    run.result.recreated = len(recreate)
    run.create([r for r in rows if r.open and r.desired and not r.config_id])
    # Stale no more without a call (the store went back to the account the code serves): the episode ends.
    run.write([(r, {"stale_alerted_at": None}) for r in rows
               if r.stale_alerted_at is not None and r.open and r.desired and r.config_id
               and (r.userid or "").lower() == r.desired.lower()])
    result = run.result
    result.skipped += run.calls.skipped
    result.wecom = dict(client.stats)
    result.seconds = time.monotonic() - started
    if run.calls.outage.is_set():
        raise CodeSyncAborted(f"WeCom unavailable: {MAX_CONSECUTIVE_FAILURES} calls failed in a row "
                              f"({result.as_dict()})")
    return result


@dataclass
class _SyncRun:
    engine: Engine
    client: WeComClient
    calls: _Calls
    fence: Fence | None
    now: Callable[[], datetime]
    skip_verify: bool
    result: CodeSyncResult = field(default_factory=CodeSyncResult)

    def write(self, changes: list[tuple[CodeRow, dict[str, Any]]],
              alerts: dict[int, WeComError] | None = None) -> None:
        """A chunk's outcome in one transaction, with the alerts it raises (code
        id → WeCom's refusal) and the end of the stale episodes it settles."""
        if not changes:
            return
        at = self.now()
        with Session(self.engine) as session:
            # One statement per kind of change, run for all its rows at once (executemany).
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            settled: list[int] = []
            for row, change in changes:
                if alerts and row.code_id in alerts:
                    alerted = _alert_stale(session, row, alerts[row.code_id], at)
                    self.result.alerts += len(alerted)
                    change = {**change, **alerted}
                if "stale_alerted_at" in change and change["stale_alerted_at"] is None \
                        and row.stale_alerted_at is not None:
                    settled.append(row.store_id)
                    row.stale_alerted_at = None
                by_columns.setdefault(tuple(sorted(change)), []).append(
                    {"code_id": row.code_id, **{f"new_{name}": value for name, value in change.items()}})
            connection = session.connection()
            for columns, params in by_columns.items():
                connection.execute(
                    update(ContactCode).where(col(ContactCode.id) == bindparam("code_id")).values(
                        {**{name: bindparam(f"new_{name}") for name in columns}, "updated_at": at,
                         "version": col(ContactCode.version) + 1}), params)
            close_incidents(session=session, level=AlertLevel.code_stale, store_ids=settled, now=at)
            if self.fence is not None:
                self.fence.check(session)
            session.commit()

    def update(self, rows: list[CodeRow]) -> list[CodeRow]:
        """Codes serving another member than they should; answers those WeCom no
        longer has (deleted elsewhere), which `create` makes again."""
        gone: list[CodeRow] = []
        for _chunk, done in self.calls.chunks(lambda r: self.client.update_contact_way(
                config_id=r.config_id or "", user=r.desired or "", state=r.state or "",
                remark=remark_for(r.name), skip_verify=self.skip_verify), rows):
            changes: list[tuple[CodeRow, dict[str, Any]]] = []
            alerts: dict[int, WeComError] = {}
            for row, _, error in done:
                if error is not None and error.errcode == CONTACT_WAY_NOT_FOUND:
                    changes.append((row, {"config_id": None, "qr_code": None, "userid": None}))
                    row.config_id = row.userid = None
                    gone.append(row)
                elif error is not None:
                    _count(self.result, error)
                    changes.append((row, {"problem": _wecom_problem(error)}))
                    alerts[row.code_id or 0] = error
                else:
                    self.result.updated += 1
                    changes.append((row, {"userid": row.desired, "problem": None, "stale_alerted_at": None}))
            self.write(changes, alerts)
        return gone

    def delete(self, rows: list[CodeRow]) -> None:
        """Closed stores' codes."""
        for _chunk, done in self.calls.chunks(lambda r: self.client.del_contact_way(r.config_id or ""), rows):
            changes: list[tuple[CodeRow, dict[str, Any]]] = []
            for row, _, error in done:
                if error is None or error.errcode == CONTACT_WAY_NOT_FOUND:
                    self.result.deleted += 1
                    changes.append((row, {"config_id": None, "qr_code": None, "userid": None, "problem": None,
                                          "stale_alerted_at": None}))
                else:
                    _count(self.result, error)
                    changes.append((row, {"problem": _wecom_problem(error)}))
            self.write(changes)

    def create(self, rows: list[CodeRow]) -> None:
        """Stores without a code: first the ways an interrupted run made, then new ones."""
        if not rows:
            return
        _give_states(self.engine, [r for r in rows if r.code_id is None], self.fence)

        def mark(chunk: list[CodeRow]) -> None:
            self.write([(row, {"pending_since": self.now()}) for row in chunk])

        for chunk, done in self.calls.chunks(lambda r: self.client.add_contact_way(
                user=r.desired or "", state=r.state or "", remark=remark_for(r.name),
                skip_verify=self.skip_verify), rows, before=mark):
            changes: list[tuple[CodeRow, dict[str, Any]]] = []
            for row, answer, error in done:
                if answer is not None:
                    self.result.created += 1
                    config_id, qr_code = answer
                    changes.append((row, {"config_id": config_id, "qr_code": qr_code or None,
                                          "userid": row.desired, "pending_since": None, "problem": None,
                                          "stale_alerted_at": None}))
                elif error is not None:
                    _count(self.result, error)
                    # Without an answer (network) the way may exist: the mark stays and the next run looks.
                    change: dict[str, Any] = {"problem": _wecom_problem(error)}
                    if error.errcode is not None:
                        change["pending_since"] = None
                    changes.append((row, change))
            tried = {id(row) for row, _, _ in done}
            # Not tried (WeCom went down meanwhile): nothing was sent for them.
            changes += [(row, {"pending_since": None}) for row in chunk if id(row) not in tried]
            self.write(changes)

    def adopt(self, rows: list[CodeRow]) -> None:
        """Keep the ways a run killed before recording them made (found by state).
        A row without one loses its mark: WeCom never made its way (one still to
        get a code is marked again when it is sent)."""
        with Session(self.engine) as session:
            known = {config_id for config_id in session.exec(select(ContactCode.config_id)).all() if config_id}
        found = _find_made(self.client, rows, self.now(), known)
        changes: list[tuple[CodeRow, dict[str, Any]]] = []
        for row in rows:
            way = found.get(row.state or "")
            if way is None:
                row.pending_since = None
                changes.append((row, {"pending_since": None}))
                continue
            self.result.adopted += 1
            users = way.get("user") or []
            row.config_id = str(way["config_id"])
            # A way serving another member is updated in this same run.
            row.userid = users[0] if len(users) == 1 else None
            changes.append((row, {"config_id": row.config_id, "qr_code": way.get("qr_code") or None,
                                  "userid": row.userid, "pending_since": None, "problem": None}))
        self.write(changes)


def _give_states(engine: Engine, rows: list[CodeRow], fence: Fence | None) -> None:
    """The code rows (with their states) of stores getting their first code."""
    if not rows:
        return
    with Session(engine) as session:
        taken = set(session.exec(select(ContactCode.state)).all())
        at = utcnow()
        for row in rows:
            row.state = state_for(row.store_id, row.crm_store_id, taken)
        session.exec(insert(ContactCode), params=[
            {"store_id": row.store_id, "state": row.state, "version": 1, "created_at": at, "updated_at": at}
            for row in rows])
        ids = dict(session.exec(select(ContactCode.store_id, ContactCode.id)).all())
        if fence is not None:
            fence.check(session)
        session.commit()
    for row in rows:
        row.code_id = ids[row.store_id]


def _find_made(client: WeComClient, rows: list[CodeRow], at: datetime,
               known: set[str]) -> dict[str, dict[str, Any]]:
    """Ways made for these codes by a run that died before recording them, by
    state (only the ways no code here knows are read)."""
    since = min(row.pending_since for row in rows if row.pending_since is not None) - ADOPT_MARGIN
    wanted = {row.state for row in rows}
    found: dict[str, dict[str, Any]] = {}
    for config_id in client.list_contact_ways(start_time=_stamp(since), end_time=_stamp(at) + 60):
        if config_id in known:
            continue
        way = client.get_contact_way(config_id)
        state = str(way.get("state") or "")
        if state in wanted and state not in found:
            found[state] = {**way, "config_id": config_id}
    return found


@dataclass
class ReconcileResult:
    checked: int = 0
    drifted: int = 0
    gone: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"checked": self.checked, "drifted": self.drifted, "gone": self.gone, "failed": self.failed,
                "reasons": self.reasons}


def reconcile_codes(*, engine: Engine, client: WeComClient, concurrency: int = 8, fence: Fence | None = None,
                    now: Callable[[], datetime] = utcnow) -> ReconcileResult:
    """Read every code back from WeCom and record what it really is: a way deleted
    elsewhere loses its config_id, one whose members or state were changed loses
    its confirmed member. `sync_codes` then repairs them (the job runs both)."""
    result = ReconcileResult()
    with Session(engine) as session:
        rows = [r for r in load_rows(session) if r.open and r.config_id]
    calls = _Calls(concurrency)
    for _chunk, done in calls.chunks(lambda r: client.get_contact_way(r.config_id or ""), rows):
        values = []
        at = now()
        for row, way, error in done:
            result.checked += 1
            if error is not None and error.errcode == CONTACT_WAY_NOT_FOUND:
                result.gone += 1
                values.append({"id": row.code_id, "config_id": None, "qr_code": None, "userid": None,
                               "checked_at": at})
            elif error is not None:
                result.failed += 1
                result.reasons[error.reason_key] = result.reasons.get(error.reason_key, 0) + 1
            elif way is not None:
                users = list(way.get("user") or [])
                serving = users[0] if len(users) == 1 else None
                confirmed = serving if serving and str(way.get("state") or "") == row.state else None
                change: dict[str, Any] = {"id": row.code_id, "checked_at": at}
                if (confirmed or "").lower() != (row.userid or "").lower():
                    result.drifted += 1
                    change["userid"] = confirmed
                if way.get("qr_code"):
                    change["qr_code"] = way["qr_code"]
                values.append(change)
        if values:
            with Session(engine) as session:
                for value in values:
                    code_id = value.pop("id")
                    session.exec(update(ContactCode).where(col(ContactCode.id) == code_id).values(**value))
                if fence is not None:
                    fence.check(session)
                session.commit()
    if calls.outage.is_set():
        raise CodeSyncAborted(f"WeCom unavailable: {MAX_CONSECUTIVE_FAILURES} calls failed in a row "
                              f"({result.as_dict()})")
    return result

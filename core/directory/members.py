"""企微账号 whose WeCom member left or was disabled, and the departed members'
customers awaiting transfer.

Two paths report a member's status: the daily member sync (`user/get` for every
active or standby account, paced by the client's limiter) and WeCom's
`change_contact` callback, at once. The callback never calls WeCom itself (it
must answer within a second): for a member who left it queues
`directory.unassigned`, which the sidecar runs within seconds to read the
departed members' customers awaiting transfer again. Both go through `member_status_seen`, so
both leave the same state. A member who left (5), was disabled (2), or whom
WeCom no longer knows (60111, the same as left) retires the account: disabled
with the reason, taken off any standby list, its store moved to the store's
standby account (core.bindings.standby) or, without a usable one, its binding
ended `account_disabled`, and, when it served a store, one member_left alert
(an episode opened and closed at once) in the outbox in the same transaction. An account already disabled is left as it
is, so neither a second sync nor a repeated callback alerts again.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import case, delete, func, insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit
from base.problems import problem
from base.timeutil import format_display, utcnow
from core.alerts import outbox
from core.auth.permissions import Actor, Capability, require, system_actor
from core.bindings.service import current_for_account, end_binding
from core.bindings.standby import move_store, usable_standby
from core.capacity.sync import MAX_CONSECUTIVE_FAILURES, TRANSIENT, SyncAborted
from core.conflicts import lock_for_write
from core.directory.accounts import find_account, set_status
from core.import_runs import runs
from core.scheduling.lease import Fence, LeaseLost
from core.wecom.client import WeComClient, WeComError
from core.wecom.identity import DISABLED, LEFT, USERID_NOT_FOUND, member_status
from core.wecom.members import unassigned_customers
from db.models import (
    Account,
    AccountStatus,
    AlertLevel,
    Binding,
    BindingEndReason,
    CapacityAlert,
    ImportRun,
    JobRequest,
    StandbyAccount,
    Store,
    SwitchReason,
    UnassignedCustomer,
)
from db.typed import select_columns
from i18n import t

log = logging.getLogger("directory.members")

SYNC_ACTOR = system_actor("wecom-member-sync")
UNASSIGNED_JOB = "directory.unassigned"
# The member statuses that take an account out of service, and the word for each.
GONE = {LEFT: "member_left", DISABLED: "member_disabled"}
WRITE_BATCH = 500
# Errors that no other member's call would escape (wrong secret or corp, API not
# allowed, IP not trusted): the sync stops at the first.
STOPS_THE_SYNC = {40001, 40013, 48002, 60020}


@dataclass
class MemberSyncResult:
    accounts: int = 0
    checked: int = 0
    retired: int = 0
    alerts: int = 0
    failed: int = 0
    skipped: int = 0
    unassigned: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    wecom: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"accounts": self.accounts, "checked": self.checked, "retired": self.retired, "alerts": self.alerts,
                "failed": self.failed, "skipped": self.skipped, "unassigned": self.unassigned,
                "seconds": round(self.seconds, 2), "reasons": self.reasons,
                **{f"wecom_{key}": value for key, value in self.wecom.items()}}


@dataclass(frozen=True)
class Retired:
    """An account taken out of service; `alert_id` when it served a store."""
    account_id: int
    alert_id: int | None


def member_status_seen(*, session: Session, actor: Actor, account_id: int, status: int,
                       now: datetime | None = None) -> Retired | None:
    """Record the member's status on its account and, when the member is gone
    and the account still in service, retire it. The caller commits."""
    now = now or utcnow()
    lock_for_write(session)
    account = session.exec(select(Account).where(col(Account.id) == account_id).with_for_update()
                           .execution_options(populate_existing=True)).first()
    if account is None:
        return None
    session.exec(update(Account).where(col(Account.id) == account_id)
                 .values(member_status=status, member_checked_at=now))
    if status not in GONE or account.status == AccountStatus.disabled:
        return None
    if runs.active_run(session, kind=runs.BINDINGS) is not None:
        # A binding sheet is being written in chunks and rests on this account's
        # binding: the handover waits for the run (hand_over_deferred), the status is kept.
        log.info("account %s: member gone, handover deferred until the binding import is done", account.userid)
        request_deferred_handover(session=session)
        return None
    return _retire_account(session, actor, account, status, now)


def request_deferred_handover(*, session: Session) -> None:
    """Have the sidecar's import-run job hand over deferred accounts soon (one
    waiting request is enough); it also does so every minute. The caller commits."""
    waiting = session.exec(select(JobRequest.id).where(JobRequest.job_id == runs.RESUME_JOB,
                                                       col(JobRequest.done_at).is_(None))).first()
    if waiting is None:
        session.add(JobRequest(job_id=runs.RESUME_JOB))


def hand_over_deferred(*, engine: Engine, now: datetime | None = None) -> int:
    """Retire the accounts whose member left while a binding sheet was being
    imported (status seen, account still in service), once no such import is
    active; how many. Only statuses seen while a binding run was active count,
    so an account an operator took back into service at another time is left alone."""
    with Session(engine) as session:
        if runs.active_run(session, kind=runs.BINDINGS) is not None:
            return 0
        during_a_run = select(ImportRun.id).where(
            ImportRun.kind == runs.BINDINGS, col(ImportRun.started_at) <= Account.member_checked_at,
            col(ImportRun.finished_at) >= Account.member_checked_at).exists()
        deferred = session.exec(select(Account.id, Account.member_status).where(
            col(Account.member_status).in_(list(GONE)), col(Account.status) != AccountStatus.disabled,
            during_a_run)).all()
    handed = 0
    for account_id, status in deferred:
        assert account_id is not None and status is not None  # a stored row, selected by its status
        with Session(engine) as session:
            try:
                retired = member_status_seen(session=session, actor=SYNC_ACTOR, account_id=account_id,
                                             status=status, now=now)
                session.commit()
            except ConcurrentEdit:
                session.rollback()
                continue
        handed += retired is not None
    return handed


def member_changed(*, session: Session, actor: Actor, userid: str, status: int,
                   now: datetime | None = None) -> Retired | None:
    """A `change_contact` callback's news about a member: its account retired
    (nothing when no account is that member) and, when it left, the customers
    awaiting transfer read again by the sidecar at once. The caller commits."""
    if status == LEFT:
        request_unassigned_refresh(session=session)
    account = find_account(session=session, userid=userid)
    if account is None or account.id is None:
        return None
    return member_status_seen(session=session, actor=actor, account_id=account.id, status=status, now=now)


def _retire_account(session: Session, actor: Actor, account: Account, status: int, now: datetime) -> Retired:
    """Take the account out of service: disabled with the reason, off any
    store's standby list, and its store moved to the store's first usable
    standby account (the entry stays up) or, without one, its binding ended
    `account_disabled`; the groups are told either way."""
    assert account.id is not None  # a loaded row has its key
    binding = current_for_account(session=session, account_id=account.id)
    store = session.get(Store, binding.store_id) if binding is not None else None
    session.exec(delete(StandbyAccount).where(col(StandbyAccount.account_id) == account.id))
    standby = usable_standby(session=session, store_id=store.id) if store is not None and store.id else None
    if binding is not None and store is not None and standby is not None:
        move_store(session=session, actor=actor, store=store, binding=binding, expected_version=binding.version,
                   account=standby, reason=SwitchReason.member_left, shown=binding.shown,
                   reviewed=binding.shown or binding.reviewed_at is not None, now=now)
    set_status(session=session, actor=actor, account=account, status=AccountStatus.disabled,
               branch_id=store.branch_id if store else None,
               reason=problem(f"accounts.reason.{GONE[status]}", at=format_display(now)))
    if binding is None or store is None:
        return Retired(account.id, None)
    if standby is None:
        end_binding(session=session, actor=actor, binding=binding, reason=BindingEndReason.account_disabled)
    alert = CapacityAlert(account_id=account.id, level=AlertLevel.member_left, level_pct=0, branch_id=store.branch_id,
                          customer_count=account.customer_count, capacity_limit=account.capacity_limit,
                          opened_at=now, closed_at=now)
    session.add(alert)
    session.flush()
    if standby is None:
        text = t(f"accounts.alert.{GONE[status]}", store=store.name, crm_store_id=store.crm_store_id,
                 name=account.name or account.userid, userid=account.userid)
    else:
        text = t(f"accounts.alert.{GONE[status]}_switched", store=store.name, crm_store_id=store.crm_store_id,
                 name=account.name or account.userid, userid=account.userid,
                 new_name=standby.name or standby.userid, new=standby.userid)
    if outbox.enqueue(session=session, alert_id=alert.id, branch_id=store.branch_id, text=text, now=now):
        alert.last_notified_at = now
        alert.notify_count = 1
    log.info("account %s retired: member status %s, store %s", account.userid, status, store.crm_store_id)
    return Retired(account.id, alert.id)


def sync_members(*, engine: Engine, client: WeComClient, concurrency: int = 4, now: datetime | None = None,
                 fence: Fence | None = None) -> MemberSyncResult:
    """Read every active or standby account's member status and act on the gone
    ones, then replace the customers awaiting transfer. With a `fence`, each
    write checks the lease first; once it is lost the remaining calls are
    skipped and LeaseLost is raised."""
    started = time.monotonic()
    now = now or utcnow()
    result = MemberSyncResult()
    with Session(engine) as session:
        accounts = session.exec(select_columns(Account.id, Account.userid).where(
            col(Account.status).in_([AccountStatus.active, AccountStatus.standby]))).all()
    result.accounts = len(accounts)
    stop = threading.Event()
    stopped_by: list[WeComError] = []
    streak = {"failures": 0}
    streak_lock = threading.Lock()

    def fetch(account_id: int, userid: str) -> tuple[int, int | None, WeComError | None]:
        if stop.is_set():
            return account_id, None, None
        try:
            status = member_status(client, userid)
        except WeComError as exc:
            if exc.errcode == USERID_NOT_FOUND:
                return account_id, LEFT, None
            with streak_lock:
                streak["failures"] += 1
                if exc.errcode in STOPS_THE_SYNC or (
                        (exc.errcode is None or exc.errcode in TRANSIENT)
                        and streak["failures"] >= MAX_CONSECUTIVE_FAILURES):
                    stopped_by.append(exc)
                    stop.set()
            return account_id, None, exc
        with streak_lock:
            streak["failures"] = 0
        return account_id, status, None

    seen: dict[int, int] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="wecom-members") as pool:
        futures = [pool.submit(fetch, account_id, userid) for account_id, userid in accounts]
        try:
            for future in as_completed(futures):
                account_id, status, error = future.result()
                if error is not None:
                    result.failed += 1
                    result.reasons[error.reason_key] = result.reasons.get(error.reason_key, 0) + 1
                elif status is None:
                    result.skipped += 1
                else:
                    seen[account_id] = status
                if len(seen) >= WRITE_BATCH:
                    _write_statuses(engine, seen, now, fence, result)
                    seen = {}
        except LeaseLost:
            # The calls still queued return at once (the pool waits for them); nothing more is written.
            stop.set()
            raise
    _write_statuses(engine, seen, now, fence, result)
    result.wecom = dict(client.stats)
    if stopped_by:
        result.seconds = time.monotonic() - started
        raise SyncAborted(f"WeCom refused the member sync ({stopped_by[0]}); {result.as_dict()}")
    try:
        result.unassigned = refresh_unassigned(engine=engine, client=client, now=now, fence=fence)
    except WeComError as exc:
        raise SyncAborted(f"get_unassigned_list failed ({exc}); member statuses: {result.as_dict()}") from exc
    result.wecom = dict(client.stats)
    result.seconds = time.monotonic() - started
    return result


def _write_statuses(engine: Engine, seen: dict[int, int], now: datetime, fence: Fence | None,
                    result: MemberSyncResult) -> None:
    """The statuses of a batch in one transaction; each gone member's account is
    retired in its own, so that an operator's concurrent edit of one account
    holds back only that one (until the next sync)."""
    staying = [{"id": account_id, "member_status": status, "member_checked_at": now}
               for account_id, status in seen.items() if status not in GONE]
    if staying:
        with Session(engine) as session:
            session.exec(update(Account), params=staying)
            if fence is not None:
                fence.check(session)
            session.commit()
    result.checked += len(staying)
    for account_id, status in seen.items():
        if status not in GONE:
            continue
        with Session(engine) as session:
            try:
                retired = member_status_seen(session=session, actor=SYNC_ACTOR, account_id=account_id,
                                             status=status, now=now)
                if fence is not None:
                    fence.check(session)
                session.commit()
            except ConcurrentEdit as exc:
                session.rollback()
                result.reasons[exc.key] = result.reasons.get(exc.key, 0) + 1
                continue
        result.checked += 1
        if retired is not None:
            result.retired += 1
            if retired.alert_id is not None:
                result.alerts += 1


def request_unassigned_refresh(*, session: Session) -> None:
    """Have the sidecar read the customers awaiting transfer within seconds (one
    waiting request is enough). The caller commits, so the request exists exactly
    when the news that asks for it was recorded."""
    waiting = session.exec(select(JobRequest.id).where(JobRequest.job_id == UNASSIGNED_JOB,
                                                       col(JobRequest.done_at).is_(None))).first()
    if waiting is None:
        session.add(JobRequest(job_id=UNASSIGNED_JOB))


def refresh_unassigned(*, engine: Engine, client: WeComClient, now: datetime | None = None,
                       fence: Fence | None = None) -> int:
    """Replace the stored customers awaiting transfer with WeCom's list (all
    pages, read before anything is replaced); returns how many there are."""
    entries = unassigned_customers(client)
    now = now or utcnow()
    rows = {(e.handover_userid, e.external_userid): {
        "handover_userid": e.handover_userid, "external_userid": e.external_userid, "synced_at": now,
        "dimission_time": datetime.fromtimestamp(e.dimission_time, UTC).replace(tzinfo=None)
        if e.dimission_time else None} for e in entries if e.handover_userid and e.external_userid}
    with Session(engine) as session:
        session.exec(delete(UnassignedCustomer))
        if rows:
            session.exec(insert(UnassignedCustomer), params=list(rows.values()))
        if fence is not None:
            fence.check(session)
        session.commit()
    return len(rows)


@dataclass(frozen=True)
class DepartedMember:
    """A departed member's customers awaiting transfer, at the store of its
    account's current or latest binding (none when no account served a store)."""
    userid: str
    name: str
    crm_store_id: str | None
    store_name: str | None
    branch_id: int | None
    customers: int
    dimission_time: datetime | None


def _departed_query():
    latest_store = (
        select(Binding.store_id)
        .where(col(Binding.account_id) == Account.id)
        .order_by(case((col(Binding.ended_at).is_(None), 0), else_=1), col(Binding.started_at).desc(),
                  col(Binding.id).desc())
        .limit(1)
        .correlate(Account)
        .scalar_subquery()
    )
    counts = (
        select(UnassignedCustomer.handover_userid, func.count().label("customers"),
               func.max(UnassignedCustomer.dimission_time).label("dimission_time"))
        .group_by(UnassignedCustomer.handover_userid)
        .subquery()
    )
    return (
        select(counts.c.handover_userid, func.coalesce(Account.name, ""), Store.crm_store_id, Store.name,
               Store.branch_id, counts.c.customers, counts.c.dimission_time)
        .select_from(counts)
        .join(Account, func.lower(Account.userid) == func.lower(counts.c.handover_userid), isouter=True)
        .join(Store, col(Store.id) == latest_store, isouter=True)
        .order_by(col(Store.crm_store_id).is_(None), Store.crm_store_id, counts.c.handover_userid)
    )


def departed_members(*, session: Session, actor: Actor) -> list[DepartedMember]:
    """By store, then member. A branch-scoped reader sees its branch's stores only."""
    require(actor, Capability.view_directory)
    query = _departed_query()
    if actor.branch_scope is not None:
        query = query.where(col(Store.branch_id) == actor.branch_scope)
    return [DepartedMember(*row) for row in session.exec(query).all()]


def customers_awaiting_transfer(*, session: Session, actor: Actor, userid: str) -> list[tuple[str, datetime | None]]:
    """A departed member's customers (external userid, when the member left), if the reader may see the member."""
    visible = {member.userid for member in departed_members(session=session, actor=actor)}
    if userid not in visible:
        return []
    return list(session.exec(select(UnassignedCustomer.external_userid, UnassignedCustomer.dimission_time)
                             .where(col(UnassignedCustomer.handover_userid) == userid)
                             .order_by(UnassignedCustomer.external_userid)).all())

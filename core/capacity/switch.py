"""The automatic switch (自动换号): a store whose current account reached the
switch level (`capacity.switch_pct`, 0 = off) moves to its first standby account
below that account's own warn level, behind the same contact code, before the
account fills.

Each store is switched in its own transaction, with its alert and the message in
the outbox (persisted before anything is sent). The binding row is locked and
ended by compare-and-set on its version, and the transaction checks the
sidecar's lease, so two sidecars (or a sidecar and an operator's 换号) never
move a store twice: the second finds the binding ended and does nothing. A
store at the switch level with no standby able to take over gets one critical
no_standby alert, an episode that stays open (never repeated) until the store
moves, or the account falls `capacity.hysteresis_pct` points below the level.
"""

import logging
import math
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit
from base.timeutil import utcnow
from core import settings_store
from core.alerts import outbox
from core.auth.permissions import system_actor
from core.bindings.standby import move_store, usable_standby
from core.capacity.rules import usage_pct
from core.conflicts import lock_for_write, settled_races
from core.import_runs import runs
from core.scheduling.lease import Fence
from db.models import (
    Account,
    AccountStatus,
    AlertLevel,
    Binding,
    CapacityAlert,
    Store,
    StoreStatus,
    SwitchReason,
)
from db.typed import select_columns
from i18n import t

log = logging.getLogger("capacity")

SWITCH_ACTOR = system_actor("capacity-switch")


@dataclass
class SwitchFigures:
    at_level: int = 0
    switched: int = 0
    no_standby: int = 0
    closed: int = 0
    conflicts: int = 0
    # Stores left for the next tick: a binding sheet was being imported (an import run).
    import_running: int = 0


def _at_level(session: Session, switch_pct: int) -> list[int]:
    """The open stores whose current account is active and at or above the level."""
    return [store_id for store_id in session.exec(
        select(Store.id)
        .join(Binding, (col(Binding.store_id) == Store.id) & col(Binding.ended_at).is_(None))
        .join(Account, col(Account.id) == Binding.account_id)
        .where(col(Store.status) == StoreStatus.open, col(Account.status) == AccountStatus.active,
               col(Account.customer_count) * 100 >= col(Account.capacity_limit) * switch_pct)
        .order_by(col(Store.id))).all() if store_id is not None]


def pct_text(count: int, limit: int) -> int:
    """The usage a message names, in whole percent, never more than it is."""
    return math.floor(usage_pct(count, limit))


def switch_store(*, session: Session, store_id: int, switch_pct: int, now: datetime | None = None) -> str | None:
    """Switch one store if it is (still) at the level: "switched", "no_standby"
    (a new alert), "import_running" (a binding sheet is being imported in
    chunks: the store is left for the next tick, so the import never meets a
    binding it did not read), or None (nothing to do). The caller commits;
    ConcurrentEdit when another transaction moved the store or opened its alert first."""
    now = now or utcnow()
    with settled_races():
        lock_for_write(session)
        if runs.active_run(session, kind=runs.BINDINGS) is not None:
            return "import_running"
        binding = session.exec(select(Binding).where(col(Binding.store_id) == store_id,
                                                     col(Binding.ended_at).is_(None))
                               .with_for_update().execution_options(populate_existing=True)).first()
        if binding is None or binding.id is None:
            return None
        store = session.get_one(Store, store_id, populate_existing=True)
        account = session.get_one(Account, binding.account_id, populate_existing=True)
        if (store.status != StoreStatus.open or account.status != AccountStatus.active
                or account.customer_count * 100 < account.capacity_limit * switch_pct):
            return None
        standby = usable_standby(session=session, store_id=store_id)
        if standby is None:
            return "no_standby" if _open_no_standby(session, store, account, switch_pct, now) else None
        moved = move_store(session=session, actor=SWITCH_ACTOR, store=store, binding=binding,
                           expected_version=binding.version, account=standby, reason=SwitchReason.capacity,
                           shown=binding.shown, reviewed=True, now=now)
        text = t("capacity.switch.message", store=store.name, old_name=account.name or account.userid,
                 old=account.userid, new_name=standby.name or standby.userid, new=standby.userid,
                 pct=pct_text(account.customer_count, account.capacity_limit))
        alert = _alert(session, account, AlertLevel.switched, switch_pct, store.branch_id, now, closed=True)
        moved.switch.alert_id = alert.id
        _enqueue(session, alert, text, now)
        _close_no_standby(session, [account.id], now)
        log.info("store %s switched from %s to %s at %s/%s", store.crm_store_id, account.userid, standby.userid,
                 account.customer_count, account.capacity_limit)
        session.flush()
        return "switched"


def _alert(session: Session, account: Account, level: AlertLevel, level_pct: int, branch_id: int,
           now: datetime, closed: bool) -> CapacityAlert:
    assert account.id is not None  # a loaded row has its key
    alert = CapacityAlert(account_id=account.id, level=level, level_pct=level_pct, branch_id=branch_id,
                          customer_count=account.customer_count, capacity_limit=account.capacity_limit,
                          opened_at=now, closed_at=now if closed else None)
    session.add(alert)
    session.flush()
    return alert


def _enqueue(session: Session, alert: CapacityAlert, text: str, now: datetime) -> None:
    if outbox.enqueue(session=session, alert_id=alert.id, branch_id=alert.branch_id, text=text, now=now):
        alert.last_notified_at = now
        alert.notify_count = 1
        session.add(alert)


def _no_standby_text(store: Store, account: Account, switch_pct: int) -> str:
    return t("capacity.switch.no_standby", store=store.name, crm_store_id=store.crm_store_id,
             name=account.name or account.userid, userid=account.userid,
             pct=pct_text(account.customer_count, account.capacity_limit), level=switch_pct)


def _open_no_standby(session: Session, store: Store, account: Account, switch_pct: int, now: datetime) -> bool:
    """One open no_standby episode per account: False when it is open already.
    One that no channel took when it opened goes out once a channel takes it."""
    already = session.exec(select(CapacityAlert).where(
        col(CapacityAlert.account_id) == account.id, col(CapacityAlert.level) == AlertLevel.no_standby,
        col(CapacityAlert.closed_at).is_(None))).first()
    if already is not None:
        if already.last_notified_at is None:
            _enqueue(session, already, _no_standby_text(store, account, switch_pct), now)
        return False
    alert = _alert(session, account, AlertLevel.no_standby, switch_pct, store.branch_id, now, closed=False)
    _enqueue(session, alert, _no_standby_text(store, account, switch_pct), now)
    log.warning("store %s at the switch level without a usable standby (%s)", store.crm_store_id, account.userid)
    return True


def _close_no_standby(session: Session, account_ids: list[int | None], now: datetime) -> int:
    ids = [account_id for account_id in account_ids if account_id is not None]
    if not ids:
        return 0
    return session.exec(update(CapacityAlert).where(
        col(CapacityAlert.account_id).in_(ids), col(CapacityAlert.level) == AlertLevel.no_standby,
        col(CapacityAlert.closed_at).is_(None)).values(closed_at=now, version=CapacityAlert.version + 1)).rowcount


def _close_settled(session: Session, switch_pct: int, now: datetime) -> int:
    """End the no_standby episodes that no longer hold: switching turned off,
    the account no longer serving an open store, or far enough below the level."""
    hysteresis = settings_store.effective(session=session, key="capacity.hysteresis_pct")
    episodes = session.exec(
        select_columns(CapacityAlert.account_id, Account.status, Account.customer_count, Account.capacity_limit,
                       Store.status)
        .join(Account, col(Account.id) == CapacityAlert.account_id)
        .join(Binding, (col(Binding.account_id) == Account.id) & col(Binding.ended_at).is_(None), isouter=True)
        .join(Store, col(Store.id) == Binding.store_id, isouter=True)
        .where(col(CapacityAlert.level) == AlertLevel.no_standby, col(CapacityAlert.closed_at).is_(None))).all()
    settled = [account_id for account_id, status, count, limit, store_status in episodes
               if switch_pct == 0 or status != AccountStatus.active or store_status != StoreStatus.open
               or usage_pct(count, limit) < switch_pct - hysteresis]
    return _close_no_standby(session, list(settled), now)


def switch_accounts(*, engine: Engine, now: datetime | None = None, fence: Fence | None = None) -> dict:
    """One pass over every store at the switch level; with a `fence`, each
    transaction checks the lease (LeaseLost stops the pass)."""
    now = now or utcnow()
    figures = SwitchFigures()
    with Session(engine) as session:
        switch_pct = settings_store.effective(session=session, key="capacity.switch_pct")
        store_ids = _at_level(session, switch_pct) if switch_pct else []
    figures.at_level = len(store_ids)
    for index, store_id in enumerate(store_ids):
        with Session(engine) as session:
            try:
                outcome = switch_store(session=session, store_id=store_id, switch_pct=switch_pct, now=now)
                if fence is not None:
                    fence.check(session)
                session.commit()
            except ConcurrentEdit:
                session.rollback()
                figures.conflicts += 1
                continue
        if outcome == "import_running":
            figures.import_running = len(store_ids) - index
            break
        if outcome == "switched":
            figures.switched += 1
        elif outcome == "no_standby":
            figures.no_standby += 1
    with Session(engine) as session:
        figures.closed = _close_settled(session, switch_pct, now)
        if fence is not None:
            fence.check(session)
        session.commit()
    result = asdict(figures)
    if not switch_pct:
        result["off"] = True
    return result

"""Demo standby accounts: the spare accounts reserved for stores outside BJ (the BJ
member who leaves in the demo takes its store's entry down), and one Shanghai
store whose account sits just under the switch level and grows past it a couple
of minutes after start, so the robot inbox shows the automatic switch."""

import random

from sqlmodel import Session, col, select

from base.timeutil import utcnow
from core import settings_store
from db.models import Account, AccountStatus, Binding, Branch, StandbyAccount, Store, StoreStatus

# The branches whose stores get the spare accounts, and the one the switch happens in.
STANDBY_BRANCHES = ("SH01", "GZ01", "SZ01")
SWITCH_BRANCH = "SH01"
# Where the switching store's account starts, in percent.
SWITCH_START_PCT = 93


def _live_stores(session: Session, branch_codes: tuple[str, ...]) -> list[tuple[Store, Account]]:
    """Open stores of these branches whose entry is shown on an active account, by CRM store ID."""
    return list(session.exec(
        select(Store, Account)
        .join(Branch, col(Branch.id) == Store.branch_id)
        .join(Binding, (col(Binding.store_id) == Store.id) & col(Binding.ended_at).is_(None))
        .join(Account, col(Account.id) == Binding.account_id)
        .where(col(Branch.code).in_(branch_codes), col(Store.status) == StoreStatus.open,
               col(Binding.shown).is_(True), col(Account.status) == AccountStatus.active)
        .order_by(col(Store.crm_store_id))).all())


def switching_store(*, session: Session) -> tuple[Store, Account] | None:
    """The store whose account crosses the switch level in the demo."""
    return next(iter(_live_stores(session, (SWITCH_BRANCH,))), None)


def seed_standby(session: Session, rng: random.Random) -> None:
    spares = list(session.exec(select(Account).where(col(Account.status) == AccountStatus.standby)
                               .order_by(col(Account.userid))).all())
    live = _live_stores(session, STANDBY_BRANCHES)
    switching = switching_store(session=session)
    if switching is not None:
        # The switching store first, so it gets the first spare; the others in a shuffled order.
        live = [switching, *rng.sample([pair for pair in live if pair[0].id != switching[0].id], len(live) - 1)]
        store, account = switching
        account.customer_count = account.capacity_limit * SWITCH_START_PCT // 100
        account.count_synced_at = utcnow()
        session.add(account)
    # Two spares stay unreserved, for 换号 on the bindings page.
    for (store, _account), spare in zip(live, spares[:-2], strict=False):
        session.add(StandbyAccount(store_id=store.id, account_id=spare.id, position=0))
    session.flush()


def switch_growth(*, session: Session, minutes: float) -> dict[str, float]:
    """Customers per minute for the switching store's account, so that it reaches the
    switch level `minutes` after the simulator starts (nothing when switching is off)."""
    switching = switching_store(session=session)
    switch_pct = settings_store.effective(session=session, key="capacity.switch_pct")
    if switching is None or not switch_pct:
        return {}
    _store, account = switching
    missing = account.capacity_limit * switch_pct / 100 - account.customer_count
    return {account.userid: max(1.0, missing / max(minutes, 0.1))}

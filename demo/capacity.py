"""Demo data for capacity: a week of count history (trend and forecast), robot
channels pointing at the simulator's inbox, and the alerts already handled
before the demo starts (so the inbox shows only what happens while you watch)."""

import random
from datetime import timedelta

from sqlmodel import Session, select

from base.config import get_settings
from base.timeutil import utcnow
from core.capacity.evaluate import thresholds
from core.capacity.placement import placements
from core.capacity.rules import LEVELS, usage_pct
from db.models import Account, AccountStatus, AlertChannel, Branch, CapacityAlert, CountSnapshot


def seed_capacity(session: Session, rng: random.Random) -> None:
    now = utcnow()
    levels = thresholds(session=session)
    places = placements(session=session)
    accounts = session.exec(select(Account).where(Account.status == AccountStatus.active)).all()
    snapshots = []
    for account in accounts:
        per_day = rng.choice([0, 5, 12, 20, 35, 60])
        for days_ago in range(7, -1, -1):
            count = max(0, account.customer_count - per_day * days_ago)
            snapshots.append(CountSnapshot(account_id=account.id, customer_count=count,
                                           taken_at=(account.count_synced_at or now) - timedelta(days=days_ago)))
        pct = usage_pct(account.customer_count, account.capacity_limit)
        crossed = [level for level in LEVELS if pct >= levels.pct(level)]
        for level in crossed:
            opened = now - timedelta(days=rng.randint(1, 20), hours=rng.randint(0, 23))
            place = places.get(account.id)
            session.add(CapacityAlert(
                account_id=account.id, level=level, level_pct=levels.pct(level),
                branch_id=place.branch_id if place else None, customer_count=account.customer_count,
                capacity_limit=account.capacity_limit, opened_at=opened, notified=level == crossed[-1],
                last_notified_at=opened if level == crossed[-1] else None,
                notify_count=1 if level == crossed[-1] else 0, acknowledged_at=opened + timedelta(hours=2)))
    session.add_all(snapshots)
    settings = get_settings()
    if settings.uses_wecom_simulator:
        base = settings.WECOM_API_BASE.rstrip("/")
        session.add(AlertChannel(name="总部企微运营群（演示）", kind="wecom",
                                 url=f"{base}/cgi-bin/webhook/send?key=demo-hq"))
        shanghai = session.exec(select(Branch).where(Branch.code == "SH01")).first()
        if shanghai is not None:
            session.add(AlertChannel(name="上海分公司群（演示）", kind="wecom", branch_id=shanghai.id,
                                     url=f"{base}/cgi-bin/webhook/send?key=demo-sh01"))
    session.flush()

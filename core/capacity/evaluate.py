"""Evaluate every active account against the alert levels: open and close
episodes, and put each notification in the outbox in the same transaction, so
a crash between evaluating and delivering loses nothing."""

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from console.messages import t
from core import settings_store
from core.alerts import outbox
from core.capacity.placement import placements
from core.capacity.rules import REPEATED_LEVELS, Thresholds, decide, highest, usage_pct
from core.capacity.template import render
from core.timeutil import utcnow
from db.models import Account, AccountStatus, CapacityAlert


def thresholds(*, session: Session) -> Thresholds:
    values = settings_store.effective_all(session=session)
    return Thresholds(warn=values["capacity.warn_pct"], critical=values["capacity.critical_pct"],
                      full=values["capacity.full_pct"], hysteresis=values["capacity.hysteresis_pct"],
                      repeat_hours=values["capacity.repeat_hours"])


def evaluate(*, session: Session, now: datetime | None = None) -> dict[str, int]:
    """One evaluation pass; the caller commits (all or nothing)."""
    now = now or utcnow()
    levels = thresholds(session=session)
    template = settings_store.effective(session=session, key="capacity.alert_template")
    places = placements(session=session)
    open_rows: dict[int, dict[str, CapacityAlert]] = {}
    for alert in session.exec(select(CapacityAlert).where(col(CapacityAlert.closed_at).is_(None))).all():
        open_rows.setdefault(alert.account_id, {})[alert.level] = alert
    accounts = session.exec(select(Account).where(Account.status == AccountStatus.active)).all()
    active_ids = {account.id for account in accounts}
    figures = {"accounts": len(accounts), "opened": 0, "closed": 0, "notified": 0, "repeated": 0, "deliveries": 0}

    def close(alert: CapacityAlert) -> None:
        session.exec(update(CapacityAlert).where(col(CapacityAlert.id) == alert.id,
                                                 col(CapacityAlert.closed_at).is_(None))
                     .values(closed_at=now, version=CapacityAlert.version + 1))
        figures["closed"] += 1

    # An account no longer active is no longer watched: its episodes end.
    for account_id, rows in open_rows.items():
        if account_id not in active_ids:
            for alert in rows.values():
                close(alert)

    repeat_before = now - timedelta(hours=levels.repeat_hours)
    for account in accounts:
        rows = open_rows.get(account.id, {})
        pct = usage_pct(account.customer_count, account.capacity_limit)
        decision = decide(pct, set(rows), levels)
        for level in decision.close:
            close(rows[level])
        place = places.get(account.id)
        new_rows: dict[str, CapacityAlert] = {}
        for level in decision.open:
            alert = CapacityAlert(account_id=account.id, level=level, level_pct=levels.pct(level),
                                  branch_id=place.branch_id if place else None,
                                  customer_count=account.customer_count, capacity_limit=account.capacity_limit,
                                  opened_at=now, notified=level == decision.notify)
            session.add(alert)
            new_rows[level] = alert
            figures["opened"] += 1
        if new_rows:
            session.flush()
        if decision.notify:
            figures["deliveries"] += _notify(session, new_rows[decision.notify], account, place, template, now)
            figures["notified"] += 1
            continue
        remaining = {level: row for level, row in rows.items() if level not in decision.close}
        top = highest(set(remaining))
        if top in REPEATED_LEVELS:
            alert = remaining[top]
            if alert.acknowledged_at is None and alert.last_notified_at and alert.last_notified_at <= repeat_before:
                alert.customer_count, alert.capacity_limit = account.customer_count, account.capacity_limit
                figures["deliveries"] += _notify(session, alert, account, place, template, now)
                figures["repeated"] += 1
    return figures


def _notify(session: Session, alert: CapacityAlert, account: Account, place, template: str, now: datetime) -> int:
    text = render(template, {
        "企微账号名称": account.name or account.userid, "企微账号": account.userid, "百分比": alert.level_pct,
        "级别": t(f"capacity.level.{alert.level}"), "分公司": place.branch_name if place else t("common.none"),
        "门店": place.store_name if place else t("common.none"), "客户数": account.customer_count,
        "上限": account.capacity_limit,
    })
    alert.last_notified_at = now
    alert.notify_count += 1
    alert.version += 1
    session.add(alert)
    return outbox.enqueue(session=session, alert_id=alert.id, branch_id=alert.branch_id, text=text, now=now)

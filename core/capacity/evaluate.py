"""Evaluate every active account against the alert levels: open and close
episodes, and put each notification in the outbox in the same transaction, so
a crash between evaluating and delivering loses nothing."""

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from base.timeutil import utcnow
from core import settings_store
from core.alerts import outbox
from core.capacity.placement import placements
from core.capacity.rules import LEVELS, REPEATED_LEVELS, Thresholds, decide, highest, usage_pct
from core.capacity.template import render
from db.models import Account, AccountStatus, AlertChannel, AlertDelivery, CapacityAlert, DeliveryStatus
from i18n import t


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
    channels = outbox.enabled_channels(session=session)
    open_rows: dict[int, dict[str, CapacityAlert]] = {}
    # Only the capacity levels' episodes: the switch keeps its no_standby episodes itself.
    for alert in session.exec(select(CapacityAlert).where(col(CapacityAlert.closed_at).is_(None),
                                                          col(CapacityAlert.level).in_(LEVELS))).all():
        assert alert.account_id is not None  # a capacity level always names its account
        open_rows.setdefault(alert.account_id, {})[alert.level] = alert
    # Alerts whose last message is still in the outbox: no repeat on top of it.
    in_outbox = set(session.exec(select(AlertDelivery.alert_id).where(
        col(AlertDelivery.status).in_([DeliveryStatus.pending, DeliveryStatus.sending]),
        col(AlertDelivery.alert_id).is_not(None)).distinct()).all())
    active_ids = set(session.exec(select(Account.id).where(Account.status == AccountStatus.active)).all())
    # An account below the lowest level without an open episode has nothing to open, close or
    # repeat: only the others are loaded, a few percent of a large chain.
    lowest = min(levels.pct(level) for level in LEVELS)
    accounts = session.exec(select(Account).where(
        Account.status == AccountStatus.active,
        (col(Account.customer_count) * 100 >= col(Account.capacity_limit) * lowest)
        | col(Account.id).in_(select(CapacityAlert.account_id).where(col(CapacityAlert.closed_at).is_(None),
                                                                     col(CapacityAlert.level).in_(LEVELS))))).all()
    figures = {"accounts": len(active_ids), "opened": 0, "closed": 0, "notified": 0, "repeated": 0, "deliveries": 0,
               "no_channel": 0}

    def close(alert: CapacityAlert) -> None:
        session.exec(update(CapacityAlert).where(col(CapacityAlert.id) == alert.id,
                                                 col(CapacityAlert.closed_at).is_(None))
                     .values(closed_at=now, version=CapacityAlert.version + 1))
        figures["closed"] += 1

    def notify(alert: CapacityAlert, account: Account, place, counter: str) -> None:
        queued = _notify(session, alert, account, place, template, now, channels)
        figures["deliveries"] += queued
        figures[counter if queued else "no_channel"] += 1

    # An account no longer active is no longer watched: its episodes end.
    for account_id, rows in open_rows.items():
        if account_id not in active_ids:
            for alert in rows.values():
                close(alert)

    repeat_before = now - timedelta(hours=levels.repeat_hours)
    for account in accounts:
        assert account.id is not None  # a loaded row has its key
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
            notify(new_rows[decision.notify], account, place, "notified")
            continue
        remaining = {level: row for level, row in rows.items() if level not in decision.close}
        top = highest(set(remaining))
        if top is None:
            continue
        alert = remaining[top]
        if not alert.notified:
            # The higher level that told the group has ended while this one goes
            # on: it now stands for the account (listed as open, repeated) and
            # its repeat clock starts at that higher level's last message.
            told = [at for level in decision.close if (at := rows[level].last_notified_at)]
            alert.notified = True
            alert.last_notified_at = alert.last_notified_at or (max(told) if told else None)
            alert.version += 1
            session.add(alert)
        if alert.acknowledged_at is not None or alert.id in in_outbox:
            continue
        if alert.last_notified_at is None:
            # No channel took it when it opened: it goes out once one does.
            notify(alert, account, place, "notified")
        elif top in REPEATED_LEVELS and alert.last_notified_at <= repeat_before:
            alert.customer_count, alert.capacity_limit = account.customer_count, account.capacity_limit
            notify(alert, account, place, "repeated")
    return figures


def _notify(session: Session, alert: CapacityAlert, account: Account, place, template: str, now: datetime,
            channels: list[AlertChannel]) -> int:
    """Queue the alert's message for every channel that takes it. Only when one
    does is the alert counted as notified; otherwise it stays visibly without a
    channel and is tried again on the next evaluation."""
    text = render(template, {
        "企微账号名称": account.name or account.userid, "企微账号": account.userid, "百分比": alert.level_pct,
        "级别": t(f"capacity.level.{alert.level}"), "分公司": place.branch_name if place else t("common.none"),
        "门店": place.store_name if place else t("common.none"), "客户数": account.customer_count,
        "上限": account.capacity_limit,
    })
    queued = outbox.enqueue(session=session, alert_id=alert.id, branch_id=alert.branch_id, text=text, now=now,
                            channels=channels)
    if queued:
        alert.last_notified_at = now
        alert.notify_count += 1
        alert.version += 1
        session.add(alert)
    return queued

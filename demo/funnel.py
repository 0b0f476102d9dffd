"""Demo funnel: 30 days of plausible tracking events and added customers, so
导流效果 is alive on first run (a DEMO_EXTENSIONS entry of demo.seed)."""

import hashlib
import random
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import insert
from sqlmodel import Session, col, select

from base.timeutil import utcnow
from core.funnel.intake import ADDED_BY_STATE, day_number, fact_zone, record_activity
from core.funnel.rollup import roll_up_in_transaction
from db.models import Account, Binding, ContactEvent, Store, StoreStatus, TrackingEvent

DAYS = 30
PLATFORMS = (("app", 0.6), ("miniprogram", 0.3), ("h5", 0.1))


def _platform(rng: random.Random) -> str:
    roll = rng.random()
    for name, share in PLATFORMS:
        if roll < share:
            return name
        roll -= share
    return PLATFORMS[-1][0]


def seed_funnel(session: Session, rng: random.Random, *, now: datetime | None = None) -> None:
    """The 30 days ending today: events between 08:00 and 23:00, none after `now`."""
    zone = fact_zone(session=session)
    now = (now or datetime.now(zone)).astimezone(zone)
    today = now.date()
    stores = session.exec(select(Store).where(Store.status == StoreStatus.open)).all()
    shown = {store_id: userid for store_id, userid in session.exec(
        select(Binding.store_id, Account.userid).join(Account, col(Account.id) == Binding.account_id)
        .where(col(Binding.ended_at).is_(None), col(Binding.shown).is_(True))).all()}
    events: list[dict] = []
    activity: list[dict] = []
    contacts: list[dict] = []
    received = utcnow()
    serial = 0

    def emit(name: str, user: str, store: Store, platform: str, moment: datetime, order_id: str | None) -> None:
        nonlocal serial
        serial += 1
        events.append({"event_id": f"demo-{serial:08d}", "event": name, "occurred_at":
                       moment.astimezone(UTC).replace(tzinfo=None), "day": day_number(moment, zone), "user_key": user,
                       "store_id": store.id, "branch_id": store.branch_id, "platform": platform,
                       "order_id": order_id, "source": "demo", "received_at": received})
        if name != "jump_fail":
            activity.append({"step": name, "user_key": user, "day": day_number(moment, zone), "store_id": store.id,
                             "platform": platform, "branch_id": store.branch_id})

    for store in stores:
        # Regulars come back on several days; the rest are one-off customers.
        regulars = [f"u{store.id:05d}r{n:02d}" for n in range(rng.randint(3, 10))]
        busy = rng.uniform(2, 9)
        for back in range(DAYS, 0, -1):
            day = today - timedelta(days=back - 1)
            for _ in range(max(0, int(rng.gauss(busy, 2)))):
                user = rng.choice(regulars) if rng.random() < 0.3 else f"u{rng.getrandbits(40):010x}"
                moment = datetime.combine(day, time(rng.randint(8, 22), rng.randint(0, 59), rng.randint(0, 59)),
                                          zone)
                if moment > now:
                    continue
                platform = _platform(rng)
                order_id = f"O{rng.getrandbits(48):012d}"
                emit("order_result_view", user, store, platform, moment, order_id)
                if store.id not in shown or rng.random() > 0.32:
                    continue
                moment += timedelta(seconds=rng.randint(3, 60))
                emit("entry_click", user, store, platform, moment, order_id)
                if rng.random() > 0.9:
                    continue
                moment += timedelta(seconds=rng.randint(1, 5))
                emit("guide_view", user, store, platform, moment, order_id)
                if rng.random() > 0.62:
                    continue
                moment += timedelta(seconds=rng.randint(2, 40))
                emit("add_click", user, store, platform, moment, order_id)
                if platform == "app" and rng.random() < 0.08:
                    emit("jump_fail", user, store, platform, moment + timedelta(seconds=2), order_id)
                if rng.random() > 0.72:
                    continue
                moment += timedelta(seconds=rng.randint(10, 120))
                external = "wm" + hashlib.sha256(user.encode()).hexdigest()[:30]
                contacts.append({
                    "dedupe_key": hashlib.sha256(f"demo|{external}|{store.id}|{moment}".encode()).hexdigest(),
                    "change_type": "add_external_contact", "corp_id": "demo", "userid": shown[store.id],
                    "external_userid": external, "state": store.crm_store_id,
                    "occurred_at": moment.astimezone(UTC).replace(tzinfo=None), "account_id": None,
                    "store_id": store.id, "branch_id": store.branch_id, "received_at": received})
                # The demo's channel codes carry the store as State, as the real ones should.
                for step in ("added", ADDED_BY_STATE):
                    activity.append({"step": step, "user_key": external, "day": day_number(moment, zone),
                                     "store_id": store.id, "platform": "", "branch_id": store.branch_id})
    connection = session.connection()
    for start in range(0, len(events), 5000):
        connection.execute(insert(TrackingEvent.__table__), events[start:start + 5000])
    # One retry of the same contact is recorded once, as the callback does.
    unique_contacts = list({c["dedupe_key"]: c for c in contacts}.values())
    for start in range(0, len(unique_contacts), 5000):
        connection.execute(insert(ContactEvent.__table__), unique_contacts[start:start + 5000])
    for start in range(0, len(activity), 5000):
        record_activity(session=session, rows=activity[start:start + 5000])
    roll_up_in_transaction(session=session)

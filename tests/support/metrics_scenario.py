"""A fixed, messy event set with hand-computed expectations, shared by the
metrics tests (SQLite and PostgreSQL, core, CLI and page).

Stores: BJ01 has 000101 (bound), 000102 (binding ended), 101 (never bound),
000103 (closed); SH01 has 000201 (bound) and 000202 (never bound).
Range 2026-11-01 … 2026-11-03, Asia/Shanghai days. Intake is told it is NOW
(it refuses events older than two years), so the scenario never ages out.
"""

from datetime import date, datetime, timedelta, timezone

from sqlmodel import Session

from core.auth.permissions import system_actor
from core.funnel import contacts, intake, rollup
from tests.support.factories import ORG_STORES, find_store, make_account, make_binding, make_org

SYSTEM = system_actor("test")
START, END = date(2026, 11, 1), date(2026, 11, 3)
CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=CST)
# Binding of 000101 / account store101 began long before the range.
BOUND_SINCE = datetime(2026, 10, 1)


def build_org(session: Session, account_maker=make_account, codes: bool = True) -> dict:
    """`account_maker`: how accounts are made (a migration test at an older revision writes plain SQL);
    `codes`: whether the stores get contact codes (an older revision has no table for them)."""
    org = make_org(session)
    stores = {crm_store_id: find_store(session, crm_store_id) for _, crm_store_id, _, _ in ORG_STORES}
    accounts = {userid: account_maker(session, userid, name=userid, count=10) for userid in
                ("store101", "store102", "store103", "store201")}
    make_binding(session, stores["000101"], accounts["store101"], started_at=BOUND_SINCE, shown=True,
                 code=codes)
    make_binding(session, stores["000102"], accounts["store102"], started_at=BOUND_SINCE,
                 ended_at=datetime(2026, 10, 20), end_reason="unbound")
    make_binding(session, stores["000103"], accounts["store103"], started_at=BOUND_SINCE,
                 ended_at=datetime(2026, 10, 20), end_reason="store_closed")
    make_binding(session, stores["000201"], accounts["store201"], started_at=BOUND_SINCE, shown=True, code=codes)
    return {**org, "stores": stores, "accounts": accounts}


def event(event_id: str, name: str, when: str, user: str, store: str, platform: str = "app") -> dict:
    return {"event_id": event_id, "event": name, "occurred_at": when, "user_key": user, "crm_store_id": store,
            "platform": platform}


EVENTS = [
    # u1: views on two days at 000101 (one resent), then at 000201 (another branch) on h5.
    event("e01", "order_result_view", "2026-11-01T10:00:00+08:00", "u1", "000101"),
    event("e02", "order_result_view", "2026-11-02T09:00:00+08:00", "u1", "000101"),
    event("e02", "order_result_view", "2026-11-02T09:00:00+08:00", "u1", "000101"),
    event("e03", "entry_click", "2026-11-02T09:00:10+08:00", "u1", "000101"),
    event("e04", "guide_view", "2026-11-02T09:00:12+08:00", "u1", "000101"),
    event("e05", "add_click", "2026-11-02T09:00:20+08:00", "u1", "000101"),
    event("e06", "add_click", "2026-11-03T20:00:00+08:00", "u1", "000101"),
    event("e07", "jump_fail", "2026-11-03T20:00:01+08:00", "u1", "000101"),
    event("e08", "order_result_view", "2026-11-03T12:00:00+08:00", "u1", "000201", "h5"),
    # u2: 23:59:30 on Nov 1 and midnight of Nov 2, two stores of one branch, mini program.
    event("e10", "order_result_view", "2026-11-01T23:59:30+08:00", "u2", "000101", "miniprogram"),
    event("e11", "order_result_view", "2026-11-01T16:00:00Z", "u2", "000102", "miniprogram"),
    event("e12", "guide_view", "2026-11-02T00:00:05+08:00", "u2", "000101", "miniprogram"),
    # u3 one second before the range, u4 on the first second after it: neither counts.
    event("e20", "order_result_view", "2026-10-31T23:59:59+08:00", "u3", "000101"),
    event("e21", "order_result_view", "2026-11-03T16:00:00Z", "u4", "000101"),
    # u5: the last second of the range, written in UTC.
    event("e30", "order_result_view", "2026-11-03T15:59:59Z", "u5", "000202"),
    # u6 at the closed store (its customers still count in the funnel).
    event("e40", "order_result_view", "2026-11-02T11:00:00+08:00", "u6", "000103"),
    # u7 in the south, reaching add click.
    event("e50", "guide_view", "2026-11-01T15:00:00+08:00", "u7", "000201"),
    event("e51", "add_click", "2026-11-01T15:00:30+08:00", "u7", "000201"),
]


def change(kind: str, userid: str, external: str, when: datetime, state: str = "") -> contacts.ContactChange:
    return contacts.ContactChange(corp_id="wwcorp", change_type=kind, userid=userid, external_userid=external,
                                  create_time=int(when.timestamp()), state=state)


CHANGES = [
    change(contacts.ADDED, "store101", "wmA", datetime(2026, 11, 2, 9, 1, tzinfo=CST)),
    change(contacts.ADDED, "store101", "wmA", datetime(2026, 11, 2, 9, 1, tzinfo=CST)),  # WeCom's retry
    # State names 000201: the channel code wins over the account's binding.
    change(contacts.ADDED, "STORE101", "wmB", datetime(2026, 11, 3, 8, 0, tzinfo=CST), state="000201"),
    change(contacts.ADDED, "nobody", "wmC", datetime(2026, 11, 3, 8, 0, tzinfo=CST)),  # unattributable
]

# Hand-computed (see the comments on EVENTS).
EXPECTED = {
    "overall": {"open_stores": 5, "bound_stores": 2, "binding_rate": 0.4,
                "order_result_users": 4, "entry_click_users": 1, "guide_view_users": 3, "add_click_users": 2,
                "added_customers": 2, "entry_ctr": 0.25, "add_click_rate": 2 / 3, "add_rate": 2 / 3},
    "BJ01": {"open_stores": 3, "bound_stores": 1, "binding_rate": 1 / 3,
             "order_result_users": 3, "entry_click_users": 1, "guide_view_users": 2, "add_click_users": 1,
             "added_customers": 1, "entry_ctr": 1 / 3, "add_click_rate": 0.5, "add_rate": 0.5},
    "SH01": {"open_stores": 2, "bound_stores": 1, "binding_rate": 0.5,
             "order_result_users": 2, "entry_click_users": 0, "guide_view_users": 1, "add_click_users": 1,
             "added_customers": 1, "entry_ctr": 0.0, "add_click_rate": 1.0, "add_rate": 1.0},
}


def load(session: Session, *, now: datetime = NOW) -> dict:
    """The org, the events and the contact changes, rolled up."""
    org = build_org(session)
    result = intake.ingest_events(session=session, actor=SYSTEM, events=EVENTS, now=now)
    for item in CHANGES:
        contacts.record_contact_change(session=session, actor=SYSTEM, change=item)
    session.commit()
    rollup.refresh_rollup(session=session)
    return {**org, "intake": result}

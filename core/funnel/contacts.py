"""WeCom `change_external_contact` facts: customers added and deleted.

An added customer is attributed to a store: the one its channel code's
`State` names (precise): the state of a store's contact code (a 获客链接's
`customer_channel` comes back as the same state), else a CRM store ID (codes
made elsewhere); else the store whose binding was
current for the member's account at that moment (every customer that account
gained then, whichever way they came). It becomes the funnel's last step
(`added`, the external contact as the user); a State attribution is also
kept as `added_by_state`, so the page can say how much of the add rate is
precise. The callback carries no unionid, so adds are never matched to
tracking events' users. WeCom's retries repeat the same fields and are
recorded once. Between count syncs the account's customer count moves with
these events; the next sync replaces it with WeCom's own figure.
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import case, func, update
from sqlmodel import Session, col, select

from base.timeutil import utcnow
from core.auth.permissions import Actor, Capability, require
from core.funnel.intake import ADDED_BY_STATE, day_number, fact_zone, record_activity
from db.fastsql import dialect_insert
from db.models import Account, Binding, ContactCode, ContactEvent, Store
from db.typed import table_of

ADDED = "add_external_contact"
DELETED_BY_MEMBER = "del_external_contact"
DELETED_BY_CUSTOMER = "del_follow_user"
CHANGE_TYPES = (ADDED, DELETED_BY_MEMBER, DELETED_BY_CUSTOMER)


@dataclass(frozen=True)
class ContactChange:
    corp_id: str
    change_type: str
    userid: str
    external_userid: str
    create_time: int  # seconds since the epoch, as WeCom sends it
    state: str = ""

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.create_time, UTC)

    @property
    def dedupe_key(self) -> str:
        fields = "\x1f".join([self.corp_id, self.change_type, self.userid.lower(), self.external_userid,
                              str(self.create_time), self.state])
        return hashlib.sha256(fields.encode()).hexdigest()


def _attributed_store(session: Session, account: Account | None, change: ContactChange) -> tuple[Store | None, bool]:
    """The store and whether State named it."""
    state = change.state.strip()
    if state:
        store = session.exec(select(Store).join(ContactCode, col(ContactCode.store_id) == Store.id)
                             .where(ContactCode.state == state)).first()
        if store is None:
            store = session.exec(select(Store).where(Store.crm_store_id == state)).first()
        if store is not None:
            return store, True
    if account is None:
        return None, False
    moment = change.occurred_at.replace(tzinfo=None)
    binding = session.exec(
        select(Binding).where(Binding.account_id == account.id, col(Binding.started_at) <= moment,
                              (col(Binding.ended_at).is_(None)) | (col(Binding.ended_at) > moment))
        .order_by(col(Binding.started_at).desc())).first()
    return (session.get(Store, binding.store_id) if binding else None), False


def record_contact_change(*, session: Session, actor: Actor, change: ContactChange) -> ContactEvent | None:
    """Record one callback event; None when it was already recorded (a retry).
    The caller commits."""
    require(actor, Capability.import_events)
    account = session.exec(select(Account).where(func.lower(Account.userid) == change.userid.lower())).first()
    store, by_state = _attributed_store(session, account, change)
    table = table_of(ContactEvent)
    connection = session.connection()
    stmt = dialect_insert(connection, table).values(
        dedupe_key=change.dedupe_key, change_type=change.change_type, corp_id=change.corp_id[:64],
        userid=change.userid[:64], external_userid=change.external_userid[:128], state=change.state[:64],
        occurred_at=change.occurred_at.replace(tzinfo=None), account_id=account.id if account else None,
        store_id=store.id if store else None, branch_id=store.branch_id if store else None, received_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=[table.c.dedupe_key]).returning(table.c.id)
    new_id = connection.execute(stmt).scalar()
    if new_id is None:
        return None
    if change.change_type == ADDED and store is not None:
        fact = {"user_key": change.external_userid[:128],
                "day": day_number(change.occurred_at, fact_zone(session=session)), "store_id": store.id,
                "platform": "", "branch_id": store.branch_id}
        steps = ["added", ADDED_BY_STATE] if by_state else ["added"]
        record_activity(session=session, rows=[{"step": step, **fact} for step in steps])
    # A customer who deletes the member (del_follow_user) stays in the member's
    # customer list, so only the member's own deletion frees capacity.
    if account is not None and change.change_type in (ADDED, DELETED_BY_MEMBER):
        # An atomic increment, not a read-modify-write, and without bumping
        # `version`: an operator editing the account's limit must not be told
        # someone else changed it because a customer was added.
        delta = 1 if change.change_type == ADDED else -1
        session.exec(update(Account).where(col(Account.id) == account.id).values(
            customer_count=case((col(Account.customer_count) + delta < 0, 0),
                                else_=col(Account.customer_count) + delta)))
    return session.get(ContactEvent, new_id)

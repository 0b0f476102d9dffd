"""Store ↔ account bindings: the primitives every flow uses (sheet commit,
review, replace, unbind, store closing). The database's partial unique indexes
are the last word on "one current binding per store / per account"; these
functions check first so that users get a clear reason instead of an error."""

from sqlalchemy import update
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit, InvalidInput
from base.timeutil import utcnow
from core import audit
from core.auth.permissions import Actor
from db.models import Account, Binding, BindingEndReason, Store


def current_for_store(*, session: Session, store_id: int) -> Binding | None:
    return session.exec(select(Binding).where(Binding.store_id == store_id, col(Binding.ended_at).is_(None))).first()


def current_for_account(*, session: Session, account_id: int) -> Binding | None:
    return session.exec(select(Binding).where(Binding.account_id == account_id,
                                              col(Binding.ended_at).is_(None))).first()


def binding_snapshot(binding: Binding, store: Store, account: Account) -> dict:
    return {"store": store.crm_store_id, "account": account.userid, "shown": binding.shown,
            "current": binding.ended_at is None, "end_reason": binding.end_reason,
            "reviewed": binding.reviewed_at is not None}


def start_binding(*, session: Session, actor: Actor, store: Store, account: Account, shown: bool = False,
                  reviewed: bool = False) -> Binding:
    """Bind a store to an account. A new binding starts hidden and waits for
    review (绑定后默认不显示) unless the caller says it was reviewed and shown."""
    if current_for_store(session=session, store_id=store.id) is not None:
        raise InvalidInput("bindings.store_already_bound", store=store.crm_store_id)
    other = current_for_account(session=session, account_id=account.id)
    if other is not None:
        other_store = session.get(Store, other.store_id)
        raise InvalidInput("bindings.account_in_use", account=account.userid,
                           store=other_store.crm_store_id if other_store else "")
    now = utcnow()
    binding = Binding(store_id=store.id, account_id=account.id, shown=shown, started_at=now,
                      created_by_id=actor.user_id, reviewed_at=now if reviewed else None,
                      reviewed_by_id=actor.user_id if reviewed else None, updated_at=now)
    session.add(binding)
    session.flush()
    audit.record(session=session, actor=actor, action="binding.start", entity_type="binding", entity_id=binding.id,
                 branch_id=store.branch_id, after=binding_snapshot(binding, store, account))
    return binding


def end_binding(*, session: Session, actor: Actor, binding: Binding, reason: BindingEndReason,
                expected_version: int | None = None) -> Binding:
    """End a current binding with its reason; refuses when the binding changed
    since `expected_version` was read (compare-and-set in the UPDATE)."""
    version = binding.version if expected_version is None else expected_version
    store = session.get(Store, binding.store_id)
    account = session.get(Account, binding.account_id)
    before = binding_snapshot(binding, store, account)
    now = utcnow()
    result = session.exec(
        update(Binding)
        .where(col(Binding.id) == binding.id, col(Binding.version) == version, col(Binding.ended_at).is_(None))
        .values(ended_at=now, end_reason=reason.value, ended_by_id=actor.user_id, shown=False,
                version=version + 1, updated_at=now)
    )
    if result.rowcount != 1:
        raise ConcurrentEdit("bindings.changed_meanwhile", store=store.crm_store_id)
    session.refresh(binding)
    audit.record(session=session, actor=actor, action="binding.end", entity_type="binding", entity_id=binding.id,
                 branch_id=store.branch_id, before=before, after=binding_snapshot(binding, store, account))
    return binding

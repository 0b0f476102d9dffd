"""Accounts and bindings on top of the `org` fixture, for the review tests."""

from sqlmodel import Session, select

from base.timeutil import utcnow
from db.models import Account, Binding, Store


def store(session: Session, crm_store_id: str) -> Store:
    return session.exec(select(Store).where(Store.crm_store_id == crm_store_id)).one()


def bind(session: Session, crm_store_id: str, userid: str, *, shown: bool = False, reviewed: bool = False,
         count: int = 0, limit: int = 5000, status: str = "active") -> Binding:
    """A current binding of the store to a new account, committed."""
    account = Account(userid=userid, name=f"{userid}客服", customer_count=count, capacity_limit=limit, status=status)
    session.add(account)
    session.flush()
    binding = Binding(store_id=store(session, crm_store_id).id, account_id=account.id, shown=shown,
                      reviewed_at=utcnow() if reviewed else None)
    session.add(binding)
    session.commit()
    return binding


def account(session: Session, userid: str, *, status: str = "active", count: int = 0,
            limit: int = 5000) -> Account:
    row = Account(userid=userid, name=f"{userid}客服", customer_count=count, capacity_limit=limit, status=status)
    session.add(row)
    session.commit()
    return row

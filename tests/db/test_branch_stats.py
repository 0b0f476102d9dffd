"""The per-branch counters behind the binding rate stay equal to a direct count
through every kind of write: new stores, closing and reopening, moving a store
to another branch, binding, replacing, unbinding, bulk inserts and deletes."""

import random

import pytest
from sqlalchemy import delete, insert, text, update
from sqlmodel import Session, col

from base.timeutil import utcnow
from core.auth.permissions import SYSTEM
from core.directory import stores
from db.engine import get_engine
from db.models import Account, Binding, Branch, Store

DIRECT = text("""
SELECT b.id,
       (SELECT count(*) FROM store s WHERE s.branch_id = b.id),
       (SELECT count(*) FROM store s WHERE s.branch_id = b.id AND s.status = 'open'),
       (SELECT count(*) FROM store s JOIN binding k ON k.store_id = s.id AND k.ended_at IS NULL
         WHERE s.branch_id = b.id AND s.status = 'open')
FROM branch b ORDER BY b.id
""")


def counters(session: Session) -> list[tuple]:
    return [(s.branch_id, s.stores, s.open_stores, s.bound_open_stores)
            for s in sorted(stores.branch_summaries(session=session, actor=SYSTEM), key=lambda s: s.branch_id)]


def direct(session: Session) -> list[tuple]:
    return [tuple(row) for row in session.connection().execute(DIRECT).all()]


def churn(session: Session, seed: int = 7, steps: int = 400) -> None:
    rng = random.Random(seed)
    branches = [Branch(code=f"B{i}", name=f"分公司{i}") for i in range(4)]
    session.add_all(branches)
    session.flush()
    session.execute(insert(Store), [{"crm_store_id": f"{i:06d}", "name": f"店{i}", "branch_id": branches[i % 4].id,
                                     "status": "open" if i % 5 else "closed", "version": 1,
                                     "created_at": utcnow(), "updated_at": utcnow()} for i in range(60)])
    session.execute(insert(Account), [{"userid": f"u{i}", "name": f"客服{i}", "capacity_limit": 100,
                                       "status": "active", "customer_count": 0, "version": 1,
                                       "created_at": utcnow(), "updated_at": utcnow()} for i in range(80)])
    session.flush()
    store_ids = list(session.connection().execute(text("SELECT id FROM store")).scalars())
    account_ids = list(session.connection().execute(text("SELECT id FROM account")).scalars())
    for step in range(steps):
        action = rng.choice(["bind", "bind", "end", "close", "reopen", "move", "new_store"])
        store_id = rng.choice(store_ids)
        current = session.connection().execute(
            text("SELECT id FROM binding WHERE store_id = :s AND ended_at IS NULL"), {"s": store_id}).scalar()
        if action == "bind" and current is None:
            used = set(session.connection().execute(
                text("SELECT account_id FROM binding WHERE ended_at IS NULL")).scalars())
            free = [a for a in account_ids if a not in used]
            if free:
                session.add(Binding(store_id=store_id, account_id=rng.choice(free)))
        elif action == "end" and current is not None:
            session.exec(update(Binding).where(col(Binding.id) == current)
                         .values(ended_at=utcnow(), end_reason=rng.choice(["replaced", "unbound"])))
        elif action in ("close", "reopen"):
            session.exec(update(Store).where(col(Store.id) == store_id)
                         .values(status="closed" if action == "close" else "open"))
        elif action == "move":
            session.exec(update(Store).where(col(Store.id) == store_id)
                         .values(branch_id=rng.choice(branches).id))
        elif action == "new_store":
            new = Store(crm_store_id=f"N{step}", name=f"新店{step}", branch_id=rng.choice(branches).id)
            session.add(new)
            session.flush()
            store_ids.append(new.id)
        session.flush()
    # History rows deleted and a store without bindings deleted.
    session.exec(delete(Binding).where(col(Binding.ended_at).is_not(None)))
    session.exec(delete(Binding).where(col(Binding.store_id) == store_ids[0]))
    session.exec(delete(Store).where(col(Store.id) == store_ids[0]))
    session.commit()


def test_counters_match_a_direct_count_on_sqlite(session):
    churn(session)
    assert counters(session) == direct(session)
    assert sum(c[3] for c in counters(session)) > 0


@pytest.mark.postgres
def test_counters_match_a_direct_count_on_postgres(pg_url):
    with Session(get_engine(pg_url)) as session:
        churn(session)
        assert counters(session) == direct(session)


def test_a_rolled_back_change_leaves_the_counters_alone(session, org):
    before = counters(session)
    session.exec(update(Store).values(status="closed"))
    session.rollback()
    assert counters(session) == before == direct(session)

"""Shared by the review benchmarks: a migrated database with N stores, each
bound to its own account, built with bulk inserts (minutes of ORM work otherwise)."""

import random

from sqlalchemy import insert
from sqlmodel import Session

from base.timeutil import utcnow
from db.engine import get_engine
from db.migrate import upgrade_to_head
from db.models import Account, Binding, Branch, Store, User


def build(url: str, stores: int, branches: int = 20, seed: int = 4) -> None:
    upgrade_to_head(url)
    rng = random.Random(seed)
    now = utcnow()
    engine = get_engine(url)
    with Session(engine) as session:
        session.execute(insert(Branch), [{"code": f"B{b:03d}", "name": f"分公司{b:03d}", "created_at": now}
                                         for b in range(branches)])
        session.execute(insert(Store), [
            {"crm_store_id": f"{i:06d}", "name": f"门店{i:06d}", "branch_id": i % branches + 1,
             "status": "closed" if i % 50 == 0 else "open", "version": 1, "created_at": now, "updated_at": now}
            for i in range(1, stores + 1)])
        session.execute(insert(Account), [
            {"userid": f"user{i:06d}", "name": f"客服{i:06d}", "capacity_limit": 5000,
             "customer_count": rng.randint(0, 4900), "status": "active", "version": 1, "created_at": now,
             "updated_at": now}
            for i in range(1, stores + 1)])
        session.execute(insert(Binding), [
            {"store_id": i, "account_id": i, "shown": False, "started_at": now, "version": 1, "updated_at": now}
            for i in range(1, stores + 1)])
        session.execute(insert(User), [{"username": "operator", "display_name": "", "role": "hq_operator",
                                        "disabled": False, "password_hash": "x", "version": 1,
                                        "created_at": now, "updated_at": now}])
        session.commit()

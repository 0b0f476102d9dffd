"""Helpers for the capacity and alert tests: a simulator per test, fast
retries, accounts bound to the `org` fixture's stores."""

from sqlmodel import Session, select

from core.wecom.client import RetryPolicy, WeComClient, forget_tokens
from db.models import Account, Binding, Store
from demo.simulator import WeComSimulator

FAST_RETRY = RetryPolicy(base_seconds=0.01, max_seconds=0.05, max_attempts=8)


def start_simulator(**options) -> WeComSimulator:
    return WeComSimulator(**options).start()


def client_for(sim: WeComSimulator, **options) -> WeComClient:
    forget_tokens()
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("per_minute", 600_000)
    return WeComClient(sim.base_url, sim.corp_id, sim.secret, **options)


def bind_accounts(session: Session, specs: list[tuple[str, str, int, int]]) -> dict[str, Account]:
    """specs: (crm_store_id, userid, customer_count, capacity_limit); each
    account is bound (current, shown) to that store."""
    accounts: dict[str, Account] = {}
    for crm_store_id, userid, count, limit in specs:
        store = session.exec(select(Store).where(Store.crm_store_id == crm_store_id)).one()
        account = Account(userid=userid, name=f"{store.name}客服", customer_count=count, capacity_limit=limit)
        session.add(account)
        session.flush()
        session.add(Binding(store_id=store.id, account_id=account.id, shown=True))
        accounts[userid] = account
    session.commit()
    return accounts

"""Helpers for the capacity and alert tests: a simulator per test, fast
retries, accounts bound to the `org` fixture's stores."""

from sqlmodel import Session

from core.wecom.client import RetryPolicy, WeComClient, forget_tokens
from db.models import Account
from demo.simulator import WeComSimulator
from tests.support.factories import find_store, make_account, make_binding

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
        store = find_store(session, crm_store_id)
        accounts[userid] = make_account(session, userid, name=f"{store.name}客服", count=count, limit=limit)
        make_binding(session, store, accounts[userid], shown=True)
    return accounts

"""Store contact codes (门店活码, DESIGN.md): which member each store's code should
serve, the code's state and remark, a store's code as the pages show it, and
the request that makes the sidecar bring WeCom in line after a binding changed.

The code serves the account of the store's current binding; without one, the
account of its last binding (unbinding keeps the code until the next binding);
a closed store has no code.
"""

from dataclasses import dataclass

from sqlmodel import Session, col, select

from base.problems import Problem
from core.auth.permissions import Actor, Capability, require
from db.models import Account, Binding, ContactCode, JobRequest, Store, StoreStatus
from db.models.codes import STATE_MAX

SYNC_JOB = "codes.sync"
RECONCILE_JOB = "codes.reconcile"
SKIP_VERIFY = "codes.skip_verify"
ENTRY_NEEDS_CODE = "codes.entry_needs_code"
LINKS_ENABLED = "codes.links_enabled"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(number: int) -> str:
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = _DIGITS[digit] + text
        if number == 0:
            return text


def state_for(store_id: int, crm_store_id: str, taken: set[str]) -> str:
    """A short state that names the store, unique among `taken` (which it joins):
    the CRM store ID when it fits, so that WeCom's own records read naturally
    (and attribution by CRM ID agrees); else derived from the store's id."""
    candidates = [crm_store_id] if 0 < len(crm_store_id) <= STATE_MAX else []
    candidates.append(f"store-{base36(store_id)}")
    for state in candidates:
        if state not in taken:
            taken.add(state)
            return state
    number = 2
    while f"store-{base36(store_id)}-{number}" in taken:
        number += 1
    state = f"store-{base36(store_id)}-{number}"
    taken.add(state)
    return state


def remark_for(store_name: str) -> str:
    """WeCom keeps at most 30 characters of remark."""
    return store_name[:STATE_MAX]


def request_code_sync(*, session: Session) -> None:
    """Have the sidecar run `codes.sync` within seconds (after a binding changed:
    换号, a standby switch, an unbinding). The caller commits, so the request
    exists exactly when the change does."""
    waiting = session.exec(select(JobRequest.id).where(JobRequest.job_id == SYNC_JOB,
                                                       col(JobRequest.done_at).is_(None))).first()
    if waiting is None:
        session.add(JobRequest(job_id=SYNC_JOB))


@dataclass(frozen=True)
class StoreCode:
    """A store's code as the bindings page shows it."""

    state: str
    config_id: str | None
    qr_code: str | None
    userid: str | None
    link_url: str | None
    problem: Problem | None
    # Why WeCom last refused the store's 获客链接 (cleared by the next call it takes).
    link_problem: Problem | None
    # The member the code should serve now, when WeCom still has another.
    pending_userid: str | None


def _desired_userid(session: Session, store_id: int) -> str | None:
    """The account the store's code should serve (see the module's docstring)."""
    store = session.get(Store, store_id)
    if store is None or store.status != StoreStatus.open:
        return None
    return session.exec(select(Account.userid).join(Binding, col(Binding.account_id) == Account.id)
                        .where(Binding.store_id == store_id)
                        .order_by(col(Binding.ended_at).is_not(None), col(Binding.ended_at).desc(),
                                  col(Binding.id).desc())).first()


def code_of_store(*, session: Session, actor: Actor, store_id: int) -> StoreCode | None:
    """The store's code, None before the sidecar first made one."""
    require(actor, Capability.view_directory)
    store = session.get(Store, store_id)
    if store is None or (actor.branch_scope is not None and store.branch_id != actor.branch_scope):
        return None
    code = session.exec(select(ContactCode).where(ContactCode.store_id == store_id)).first()
    if code is None:
        return None
    wanted = _desired_userid(session, store_id)
    pending = wanted if wanted and (code.userid or "").lower() != wanted.lower() else None
    return StoreCode(code.state, code.config_id, code.qr_code, code.userid, code.link_url,
                     Problem.decode(code.problem) if code.problem else None,
                     Problem.decode(code.link_problem) if code.link_problem else None, pending)


"""Where an account serves: the branch and store of its current binding, or of
its latest one (a replaced account stays listed for ongoing operation, but no
entry sends customers to it any more)."""

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from db.models import Binding, Branch, Store
from db.typed import select_columns


@dataclass(frozen=True)
class Placement:
    branch_id: int
    branch_name: str
    store_name: str
    crm_store_id: str
    serving: bool  # its binding is current: a store's entry may send customers to it


def placements(*, session: Session, account_ids: list[int] | None = None) -> dict[int, Placement]:
    """Every account's placement, or only those of `account_ids`. Current bindings are read
    directly (an account has at most one); only accounts without one rank their ended
    bindings, so a large chain's bindings are never sorted as a whole."""

    def place(query) -> list:
        if account_ids is not None:
            query = query.where(col(Binding.account_id).in_(account_ids))
        return list(session.exec(query).all())

    current = place(select_columns(Binding.account_id, Store.branch_id, Branch.name, Store.name, Store.crm_store_id)
                    .join(Store, col(Store.id) == Binding.store_id).join(Branch, col(Branch.id) == Store.branch_id)
                    .where(col(Binding.ended_at).is_(None)))
    found = {account_id: Placement(branch_id, branch_name, store_name, crm_store_id, True)
             for account_id, branch_id, branch_name, store_name, crm_store_id in current}
    serving = select(Binding.account_id).where(col(Binding.ended_at).is_(None))
    ranked = place(select_columns(
        Binding.account_id, Binding.store_id,
        func.row_number().over(partition_by=col(Binding.account_id),
                               order_by=(col(Binding.started_at).desc(), col(Binding.id).desc())).label("rank"))
        .where(col(Binding.ended_at).is_not(None), col(Binding.account_id).not_in(serving)))
    latest = {account_id: store_id for account_id, store_id, rank in ranked if rank == 1}
    stores = {store_id: (branch_id, branch_name, store_name, crm_store_id)
              for store_id, branch_id, branch_name, store_name, crm_store_id in session.exec(
                  select_columns(Store.id, Store.branch_id, Branch.name, Store.name, Store.crm_store_id)
                  .join(Branch, col(Branch.id) == Store.branch_id)
                  .where(col(Store.id).in_(sorted(set(latest.values()))))).all()} if latest else {}
    for account_id, store_id in latest.items():
        found[account_id] = Placement(*stores[store_id], False)
    return found

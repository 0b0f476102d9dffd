"""Where an account serves: the branch and store of its current binding, or of
its latest one (a replaced account stays listed for ongoing operation, but no
entry sends customers to it any more)."""

from dataclasses import dataclass

from sqlalchemy import case, func
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


def placements(*, session: Session) -> dict[int, Placement]:
    ranked = select(
        Binding.account_id, Binding.store_id, col(Binding.ended_at).is_(None).label("serving"),
        func.row_number().over(
            partition_by=col(Binding.account_id),
            order_by=(case((col(Binding.ended_at).is_(None), 0), else_=1), col(Binding.started_at).desc(),
                      col(Binding.id).desc()),
        ).label("rank"),
    ).subquery()
    rows = session.exec(
        select_columns(ranked.c.account_id, Store.branch_id, Branch.name, Store.name, Store.crm_store_id,
                       ranked.c.serving)
        .join(Store, col(Store.id) == ranked.c.store_id)
        .join(Branch, col(Branch.id) == Store.branch_id)
        .where(ranked.c.rank == 1)
    ).all()
    return {account_id: Placement(branch_id, branch_name, store_name, crm_store_id, bool(serving))
            for account_id, branch_id, branch_name, store_name, crm_store_id, serving in rows}

"""Per-branch store and binding counters, kept exact by database triggers
(migration 0006) on every write to branch, store and binding, so the binding
rate per branch is a read of one row per branch at any scale."""

from sqlmodel import Field, SQLModel


class BranchBindingStats(SQLModel, table=True):
    __tablename__ = "branch_binding_stats"
    branch_id: int = Field(foreign_key="branch.id", primary_key=True, ondelete="CASCADE")
    stores: int = Field(default=0)
    open_stores: int = Field(default=0)
    # Open stores with a current binding.
    bound_open_stores: int = Field(default=0)

"""Binding sheet imports (导入记录): one batch per committed sheet, with its rows
and what each row did, so HQ and the branch can trace every binding to a file."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, DateTime, Index, String, Text
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow


class ImportRowOutcome(StrEnum):
    new = "new"              # the store had no current binding
    changed = "changed"      # the store moved to another account (换号)
    unchanged = "unchanged"  # already bound to this account


class ImportFigures(SQLModel):
    """What a batch (or one branch's share of it) did."""
    total_rows: int = Field(default=0)
    new_count: int = Field(default=0)
    changed_count: int = Field(default=0)
    unchanged_count: int = Field(default=0)
    warning_count: int = Field(default=0)
    accounts_created: int = Field(default=0)


class BindingImport(ImportFigures, table=True):
    __tablename__ = "binding_import"
    __table_args__ = (
        Index("ix_binding_import_branch_at", "branch_id", "committed_at"),
        Index("ix_binding_import_at", "committed_at"),
        Index("ix_binding_import_sha256", "sha256"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # The branch the upload was made for, or the one branch all its rows are in;
    # null when an HQ user imported a file spanning several branches from the
    # command line (binding_import_branch says which).
    branch_id: int | None = Field(default=None, foreign_key="branch.id")
    uploaded_by_id: int | None = Field(default=None, foreign_key="user.id")
    uploaded_by_name: str = Field(max_length=64)
    filename: str = Field(max_length=255)
    # Not unique: the same file may be committed again when the bindings have
    # moved since; only a repeat that would change nothing is refused.
    sha256: str = Field(sa_column=Column(String(64), nullable=False))
    committed_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class BindingImportBranch(ImportFigures, table=True):
    """Each branch a batch touched, with that branch's share of the rows: the
    batch shows in each of those branches' 导入记录 with its own figures."""
    __tablename__ = "binding_import_branch"
    __table_args__ = (Index("ix_binding_import_branch_branch", "branch_id", "import_id"),)
    import_id: int = Field(foreign_key="binding_import.id", primary_key=True)
    branch_id: int = Field(foreign_key="branch.id", primary_key=True)


class BindingImportRow(SQLModel, table=True):
    __tablename__ = "binding_import_row"
    __table_args__ = (
        Index("ix_binding_import_row_import", "import_id", "row_number"),
        CheckConstraint("outcome in ('new', 'changed', 'unchanged')", name="ck_binding_import_row_outcome"),
    )
    id: int | None = Field(default=None, primary_key=True)
    import_id: int = Field(foreign_key="binding_import.id")
    row_number: int
    # The store's branch at import time: a branch manager sees only these rows
    # of a batch that spans several branches.
    branch_id: int | None = Field(default=None, foreign_key="branch.id")
    crm_store_id: str = Field(max_length=64)
    store_name: str = Field(default="", max_length=200)
    wecom_userid: str = Field(max_length=64)
    wecom_name: str = Field(default="", max_length=100)
    outcome: str = Field(max_length=16)
    # The account the store had before a replacement (换号).
    previous_userid: str | None = Field(default=None, max_length=64)
    # Warnings the uploader confirmed: JSON list of {"key", "params"}.
    warnings_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))

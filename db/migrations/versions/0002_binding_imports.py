"""binding imports: committed binding sheets and their rows

Revision ID: 0002_binding_imports
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_binding_imports"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "binding_import",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=True),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=True),
        sa.Column("uploaded_by_name", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("new_count", sa.Integer(), nullable=False),
        sa.Column("changed_count", sa.Integer(), nullable=False),
        sa.Column("unchanged_count", sa.Integer(), nullable=False),
        sa.Column("warning_count", sa.Integer(), nullable=False),
        sa.Column("accounts_created", sa.Integer(), nullable=False),
        sa.Column("committed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["branch_id"], ["branch.id"]),
        sa.ForeignKeyConstraint(["uploaded_by_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
    )
    with op.batch_alter_table("binding_import") as batch_op:
        batch_op.create_index("ix_binding_import_branch_at", ["branch_id", "committed_at"])
        batch_op.create_index("ix_binding_import_at", ["committed_at"])

    op.create_table(
        "binding_import_row",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("crm_store_id", sa.String(length=64), nullable=False),
        sa.Column("store_name", sa.String(length=200), nullable=False),
        sa.Column("wecom_userid", sa.String(length=64), nullable=False),
        sa.Column("wecom_name", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("previous_userid", sa.String(length=64), nullable=True),
        sa.Column("warnings_json", sa.Text(), nullable=True),
        sa.CheckConstraint("outcome in ('new', 'changed', 'unchanged')", name="ck_binding_import_row_outcome"),
        sa.ForeignKeyConstraint(["import_id"], ["binding_import.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("binding_import_row") as batch_op:
        batch_op.create_index("ix_binding_import_row_import", ["import_id", "row_number"])


def downgrade() -> None:
    with op.batch_alter_table("binding_import_row") as batch_op:
        batch_op.drop_index("ix_binding_import_row_import")
    op.drop_table("binding_import_row")
    with op.batch_alter_table("binding_import") as batch_op:
        batch_op.drop_index("ix_binding_import_at")
        batch_op.drop_index("ix_binding_import_branch_at")
    op.drop_table("binding_import")

"""Indexes and kept figures for pages at chain scale: each account's 7-day growth, kept;
the funnel facts by step and store, for the store ranking

Revision ID: 0017_scale_pages
Revises: 0016_code_incidents
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_scale_pages"
down_revision = "0016_code_incidents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_growth",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("growth_per_day", sa.Float(), nullable=True),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_index("ix_account_growth_computed", "account_growth", ["computed_at"])
    op.create_index("ix_funnel_activity_step_store_user", "funnel_activity",
                    ["step", "store_id", "user_key", "day", "platform"])


def downgrade() -> None:
    op.drop_index("ix_funnel_activity_step_store_user", table_name="funnel_activity")
    op.drop_index("ix_account_growth_computed", table_name="account_growth")
    op.drop_table("account_growth")

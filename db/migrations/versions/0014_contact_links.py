"""获客链接: the corp's acquisition quota as last read, and each store link's daily figures

Revision ID: 0014_contact_links
Revises: 0013_standby_accounts
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_contact_links"
down_revision = "0013_standby_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "acquisition_quota",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("balance", sa.Integer(), nullable=True),
        sa.Column("read_at", sa.DateTime(), nullable=True),
        sa.Column("low_alerted_at", sa.DateTime(), nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("statistics_through", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "link_statistic",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("new_customers", sa.Integer(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["store_id"], ["store.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("uq_link_statistic_link_day", "link_statistic", ["link_id", "day"], unique=True)
    op.create_index("ix_link_statistic_store_day", "link_statistic", ["store_id", "day"])


def downgrade() -> None:
    op.drop_index("ix_link_statistic_store_day", table_name="link_statistic")
    op.drop_index("uq_link_statistic_link_day", table_name="link_statistic")
    op.drop_table("link_statistic")
    op.drop_table("acquisition_quota")

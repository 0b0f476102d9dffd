"""contact codes: one WeCom contact way per store (state, config_id, QR, the
member it serves, its 获客链接, WeCom's last refusal)

Revision ID: 0012_contact_codes
Revises: 0011_wecom_people
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_contact_codes"
down_revision = "0011_wecom_people"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=30), nullable=False),
        sa.Column("config_id", sa.String(length=64), nullable=True),
        sa.Column("qr_code", sa.Text(), nullable=True),
        sa.Column("userid", sa.String(length=64), nullable=True),
        sa.Column("link_id", sa.String(length=64), nullable=True),
        sa.Column("link_url", sa.Text(), nullable=True),
        sa.Column("link_userid", sa.String(length=64), nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("pending_since", sa.DateTime(), nullable=True),
        sa.Column("stale_alerted_at", sa.DateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["store_id"], ["store.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("store_id"),
        sa.UniqueConstraint("state"),
        sa.UniqueConstraint("config_id"),
    )


def downgrade() -> None:
    op.drop_table("contact_code")

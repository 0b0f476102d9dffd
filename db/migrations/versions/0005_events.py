"""events: tracking events, WeCom contact events, funnel activity and roll-up

Revision ID: 0005_events
Revises: 0004_capacity
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_events"
down_revision = "0004_capacity"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tracking_event",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("user_key", sa.String(length=128), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["store_id"], ["store.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_table(
        "contact_event",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("change_type", sa.String(length=32), nullable=False),
        sa.Column("corp_id", sa.String(length=64), nullable=False),
        sa.Column("userid", sa.String(length=64), nullable=False),
        sa.Column("external_userid", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("store_id", sa.Integer(), nullable=True),
        sa.Column("branch_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["store_id"], ["store.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    with op.batch_alter_table("contact_event") as batch_op:
        batch_op.create_index("ix_contact_event_store_at", ["store_id", "occurred_at"], unique=False)
        batch_op.create_index("ix_contact_event_external", ["external_userid"], unique=False)
    op.create_table(
        "funnel_activity",
        sa.Column("step", sa.String(length=24), nullable=False),
        sa.Column("user_key", sa.String(length=128), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("step", "user_key", "day", "store_id", "platform", name="pk_funnel_activity"),
    )
    with op.batch_alter_table("funnel_activity") as batch_op:
        batch_op.create_index("ix_funnel_activity_day", ["day", "step", "user_key"], unique=False)
        batch_op.create_index("ix_funnel_activity_branch_day", ["branch_id", "day"], unique=False)
        batch_op.create_index("ix_funnel_activity_store_day", ["store_id", "day"], unique=False)
    op.create_table(
        "funnel_rollup",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=24), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("gap", sa.Integer(), nullable=False),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "branch_id", "step", "day", "gap", name="pk_funnel_rollup"),
    )
    op.create_table(
        "funnel_dirty_day",
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )


def downgrade() -> None:
    op.drop_table("funnel_dirty_day")
    op.drop_table("funnel_rollup")
    with op.batch_alter_table("funnel_activity") as batch_op:
        batch_op.drop_index("ix_funnel_activity_store_day")
        batch_op.drop_index("ix_funnel_activity_branch_day")
        batch_op.drop_index("ix_funnel_activity_day")
    op.drop_table("funnel_activity")
    with op.batch_alter_table("contact_event") as batch_op:
        batch_op.drop_index("ix_contact_event_external")
        batch_op.drop_index("ix_contact_event_store_at")
    op.drop_table("contact_event")
    op.drop_table("tracking_event")

"""capacity: count snapshots, capacity alerts, alert channels, delivery outbox

Revision ID: 0004_capacity
Revises: 0002_binding_imports
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_capacity"
down_revision = "0002_binding_imports"
branch_labels = None
depends_on = None

OPEN_EPISODE = sa.text("closed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "count_snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("customer_count", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("count_snapshot") as batch_op:
        batch_op.create_index("ix_count_snapshot_account_taken", ["account_id", "taken_at"], unique=False)

    op.create_table(
        "capacity_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("level_pct", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=True),
        sa.Column("customer_count", sa.Integer(), nullable=False),
        sa.Column("capacity_limit", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("last_notified_at", sa.DateTime(), nullable=True),
        sa.Column("notify_count", sa.Integer(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("level in ('warn', 'critical', 'full')", name="ck_capacity_alert_level"),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["branch_id"], ["branch.id"]),
        sa.ForeignKeyConstraint(["acknowledged_by_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("capacity_alert") as batch_op:
        batch_op.create_index("uq_capacity_alert_open", ["account_id", "level"], unique=True,
                              sqlite_where=OPEN_EPISODE, postgresql_where=OPEN_EPISODE)
        batch_op.create_index("ix_capacity_alert_opened", ["opened_at"], unique=False)

    op.create_table(
        "alert_channel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=True),
        sa.Column("branch_id", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(), nullable=True),
        sa.Column("window_sends", sa.Integer(), nullable=False),
        sa.Column("last_success_at", sa.DateTime(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind in ('wecom', 'dingtalk', 'feishu', 'webhook')", name="ck_alert_channel_kind"),
        sa.ForeignKeyConstraint(["branch_id"], ["branch.id"]),
        sa.PrimaryKeyConstraint("id"),
    )

    op.create_table(
        "alert_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("retry_until", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("digest_size", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("status in ('pending', 'sent', 'failed')", name="ck_alert_delivery_status"),
        sa.ForeignKeyConstraint(["alert_id"], ["capacity_alert.id"]),
        sa.ForeignKeyConstraint(["channel_id"], ["alert_channel.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_delivery") as batch_op:
        batch_op.create_index("ix_alert_delivery_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_alert_delivery_alert", ["alert_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alert_delivery") as batch_op:
        batch_op.drop_index("ix_alert_delivery_alert")
        batch_op.drop_index("ix_alert_delivery_due")
    op.drop_table("alert_delivery")
    op.drop_table("alert_channel")
    with op.batch_alter_table("capacity_alert") as batch_op:
        batch_op.drop_index("ix_capacity_alert_opened")
        batch_op.drop_index("uq_capacity_alert_open", sqlite_where=OPEN_EPISODE, postgresql_where=OPEN_EPISODE)
    op.drop_table("capacity_alert")
    with op.batch_alter_table("count_snapshot") as batch_op:
        batch_op.drop_index("ix_count_snapshot_account_taken")
    op.drop_table("count_snapshot")

"""alerts: lease generation (fencing), "run now" requests done only after the run,
outbox claims ('sending'), each robot's recorded sends (sliding rate window)

Revision ID: 0008_alerts
Revises: 0007_imports
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_alerts"
down_revision = "0007_imports"
branch_labels = None
depends_on = None

STATUS_NOW = "status in ('pending', 'sending', 'sent', 'failed')"
STATUS_BEFORE = "status in ('pending', 'sent', 'failed')"


def upgrade() -> None:
    with op.batch_alter_table("schedulerlease") as batch_op:
        batch_op.add_column(sa.Column("generation", sa.Integer(), nullable=False, server_default="1"))

    with op.batch_alter_table("jobrequest") as batch_op:
        batch_op.add_column(sa.Column("picked_by", sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column("done_at", sa.DateTime(), nullable=True))
    # Requests picked before this revision ran: treat them as done.
    op.execute("UPDATE jobrequest SET done_at = picked_at WHERE picked_at IS NOT NULL")

    with op.batch_alter_table("alert_delivery") as batch_op:
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("claim_token", sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column("uncertain_sends", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_constraint("ck_alert_delivery_status", type_="check")
        batch_op.create_check_constraint("ck_alert_delivery_status", STATUS_NOW)

    op.create_table(
        "robot_send",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["alert_channel.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("robot_send") as batch_op:
        batch_op.create_index("ix_robot_send_channel_at", ["channel_id", "sent_at"], unique=False)

    # The fixed per-run window is replaced by robot_send. SQLite drops the columns in
    # place: a batch copy would drop alert_channel, which the outbox's foreign keys forbid.
    for column in ("window_started_at", "window_sends"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE alert_channel DROP COLUMN {column}")
        else:
            op.drop_column("alert_channel", column)


def downgrade() -> None:
    with op.batch_alter_table("alert_channel") as batch_op:
        batch_op.add_column(sa.Column("window_sends", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("window_started_at", sa.DateTime(), nullable=True))

    with op.batch_alter_table("robot_send") as batch_op:
        batch_op.drop_index("ix_robot_send_channel_at")
    op.drop_table("robot_send")

    op.execute("UPDATE alert_delivery SET status = 'pending' WHERE status = 'sending'")
    with op.batch_alter_table("alert_delivery") as batch_op:
        batch_op.drop_constraint("ck_alert_delivery_status", type_="check")
        batch_op.create_check_constraint("ck_alert_delivery_status", STATUS_BEFORE)
        batch_op.drop_column("uncertain_sends")
        batch_op.drop_column("claim_token")
        batch_op.drop_column("claimed_at")

    with op.batch_alter_table("jobrequest") as batch_op:
        batch_op.drop_column("done_at")
        batch_op.drop_column("picked_by")

    with op.batch_alter_table("schedulerlease") as batch_op:
        batch_op.drop_column("generation")

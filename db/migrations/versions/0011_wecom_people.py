"""wecom people: console users linked to WeCom members (QR login, single-use login
states), app-message channels (recipients, per-member send windows, members WeCom
answered as invalid), accounts' member status and the reason WeCom disabled them,
member_left alerts, departed members' customers awaiting transfer

Revision ID: 0011_wecom_people
Revises: 0010_problems
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_wecom_people"
down_revision = "0010_problems"
branch_labels = None
depends_on = None

KIND_NOW = "kind in ('wecom', 'dingtalk', 'feishu', 'webhook', 'wecom_app')"
KIND_BEFORE = "kind in ('wecom', 'dingtalk', 'feishu', 'webhook')"
LEVEL_NOW = "level in ('warn', 'critical', 'full', 'member_left')"
LEVEL_BEFORE = "level in ('warn', 'critical', 'full')"


def _replace_check(table: str, name: str, old: str, new: str) -> None:
    """A CHECK constraint changed in place. SQLite cannot alter a constraint, and
    rebuilding the table would break the foreign keys other tables hold on it; a
    CHECK is not part of the stored rows, so the table's definition is edited in
    the schema (SQLite's documented procedure for such changes). Rows that the new
    condition refuses are removed by the caller first."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(name, table, type_="check")
        op.create_check_constraint(name, table, new)
        return
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    changed = bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = ?",
        (f"CONSTRAINT {name} CHECK ({old})", f"CONSTRAINT {name} CHECK ({new})", table)).rowcount
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    if changed != 1:
        raise RuntimeError(f"constraint {name} of {table} not found as expected")


def _drop_columns(table: str, *columns: str) -> None:
    """SQLite drops columns in place: a batch copy would drop a table others point at."""
    for column in columns:
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f'ALTER TABLE "{table}" DROP COLUMN {column}')
        else:
            op.drop_column(table, column)


def upgrade() -> None:
    op.add_column("user", sa.Column("wecom_userid", sa.String(length=64), nullable=True))
    op.create_index("uq_user_wecom_userid_ci", "user", [sa.text("lower(wecom_userid)")], unique=True)
    op.create_table(
        "wecom_login_state",
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("state"),
    )

    op.add_column("account", sa.Column("member_status", sa.Integer(), nullable=True))
    op.add_column("account", sa.Column("member_checked_at", sa.DateTime(), nullable=True))
    op.add_column("account", sa.Column("status_reason", sa.Text(), nullable=True))

    op.add_column("alert_channel", sa.Column("recipients", sa.Text(), nullable=True))
    op.add_column("alert_channel", sa.Column("to_branch_managers", sa.Boolean(), nullable=False,
                                             server_default=sa.false()))
    _replace_check("alert_channel", "ck_alert_channel_kind", KIND_BEFORE, KIND_NOW)
    op.add_column("alert_delivery", sa.Column("recipients", sa.Text(), nullable=True))
    _replace_check("capacity_alert", "ck_capacity_alert_level", LEVEL_BEFORE, LEVEL_NOW)

    op.create_table(
        "member_message_send",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("userid", sa.String(length=64), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_member_message_send_userid_at", "member_message_send", ["userid", "sent_at"])
    op.create_table(
        "channel_invalid_user",
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("userid", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("times", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["alert_channel.id"]),
        sa.PrimaryKeyConstraint("channel_id", "userid"),
    )
    op.create_table(
        "unassigned_customer",
        sa.Column("handover_userid", sa.String(length=64), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("dimission_time", sa.DateTime(), nullable=True),
        sa.Column("synced_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("handover_userid", "external_userid"),
    )


def downgrade() -> None:
    op.drop_table("unassigned_customer")
    op.drop_table("channel_invalid_user")
    op.drop_index("ix_member_message_send_userid_at", "member_message_send")
    op.drop_table("member_message_send")

    op.execute("DELETE FROM alert_delivery WHERE alert_id IN (SELECT id FROM capacity_alert WHERE level = 'member_left')")
    op.execute("DELETE FROM capacity_alert WHERE level = 'member_left'")
    _replace_check("capacity_alert", "ck_capacity_alert_level", LEVEL_NOW, LEVEL_BEFORE)
    op.execute("DELETE FROM alert_delivery WHERE channel_id IN (SELECT id FROM alert_channel WHERE kind = 'wecom_app')")
    op.execute("DELETE FROM robot_send WHERE channel_id IN (SELECT id FROM alert_channel WHERE kind = 'wecom_app')")
    op.execute("DELETE FROM alert_channel WHERE kind = 'wecom_app'")
    _drop_columns("alert_delivery", "recipients")
    _replace_check("alert_channel", "ck_alert_channel_kind", KIND_NOW, KIND_BEFORE)
    _drop_columns("alert_channel", "to_branch_managers", "recipients")
    _drop_columns("account", "status_reason", "member_checked_at", "member_status")

    op.drop_table("wecom_login_state")
    op.drop_index("uq_user_wecom_userid_ci", "user")
    _drop_columns("user", "wecom_userid")

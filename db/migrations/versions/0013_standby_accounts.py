"""standby accounts: accounts reserved for a store, in order; each store's account
switches (automatic, member left, 换号); switched and no_standby alerts

Revision ID: 0013_standby_accounts
Revises: 0012_contact_codes
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_standby_accounts"
down_revision = "0012_contact_codes"
branch_labels = None
depends_on = None

LEVEL_NOW = "level in ('warn', 'critical', 'full', 'member_left', 'switched', 'no_standby')"
LEVEL_BEFORE = "level in ('warn', 'critical', 'full', 'member_left')"


def _replace_check(table: str, name: str, old: str, new: str) -> None:
    """A CHECK constraint changed in place (as in 0011: SQLite's documented
    procedure, since rebuilding the table would break the foreign keys on it)."""
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


def upgrade() -> None:
    op.create_table(
        "standby_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["store_id"], ["store.id"]),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["created_by_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("uq_standby_account_account", "standby_account", ["account_id"], unique=True)
    op.create_index("ix_standby_account_store", "standby_account", ["store_id", "position"])
    op.create_table(
        "account_switch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("from_account_id", sa.Integer(), nullable=False),
        sa.Column("to_account_id", sa.Integer(), nullable=False),
        sa.Column("from_binding_id", sa.Integer(), nullable=False),
        sa.Column("to_binding_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("usage_pct", sa.Float(), nullable=False),
        sa.Column("customer_count", sa.Integer(), nullable=False),
        sa.Column("capacity_limit", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("switched_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("reason in ('capacity', 'member_left', 'replaced')", name="ck_account_switch_reason"),
        sa.ForeignKeyConstraint(["store_id"], ["store.id"]),
        sa.ForeignKeyConstraint(["from_account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["to_account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["from_binding_id"], ["binding.id"]),
        sa.ForeignKeyConstraint(["to_binding_id"], ["binding.id"]),
        sa.ForeignKeyConstraint(["actor_id"], ["user.id"]),
        sa.ForeignKeyConstraint(["alert_id"], ["capacity_alert.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_account_switch_store", "account_switch", ["store_id", "switched_at"])
    _replace_check("capacity_alert", "ck_capacity_alert_level", LEVEL_BEFORE, LEVEL_NOW)


def downgrade() -> None:
    op.execute("DELETE FROM alert_delivery WHERE alert_id IN "
               "(SELECT id FROM capacity_alert WHERE level IN ('switched', 'no_standby'))")
    op.drop_index("ix_account_switch_store", "account_switch")
    op.drop_table("account_switch")
    op.execute("DELETE FROM capacity_alert WHERE level IN ('switched', 'no_standby')")
    _replace_check("capacity_alert", "ck_capacity_alert_level", LEVEL_NOW, LEVEL_BEFORE)
    op.drop_index("ix_standby_account_store", "standby_account")
    op.drop_index("uq_standby_account_account", "standby_account")
    op.drop_table("standby_account")

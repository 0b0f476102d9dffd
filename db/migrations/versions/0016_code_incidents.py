"""Contact-code and link incidents on the alerts page: an alert may name a store
instead of an account (a code still serving an account the store left) or
nothing (the chain's 获客链接 quota), with what happened as key + params; a store
link's last WeCom refusal and its pending mark

Revision ID: 0016_code_incidents
Revises: 0015_import_runs
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_code_incidents"
down_revision = "0015_import_runs"
branch_labels = None
depends_on = None

LEVEL_NOW = ("level in ('warn', 'critical', 'full', 'member_left', 'switched', 'no_standby', "
             "'code_stale', 'links_quota_low')")
LEVEL_BEFORE = "level in ('warn', 'critical', 'full', 'member_left', 'switched', 'no_standby')"
# Columns an incident leaves empty: it has no account, so no count or limit either.
LOOSENED = ("account_id", "customer_count", "capacity_limit")
OPEN_EPISODE = sa.text("closed_at IS NULL")


def _edit_sqlite_table(table: str, replacements: list[tuple[str, str]]) -> None:
    """Change a table's definition in place (SQLite's documented procedure, as in
    0011 and 0013: rebuilding the table would break the foreign keys on it).
    Only changes that leave the stored rows valid: dropping NOT NULL, widening a CHECK."""
    bind = op.get_bind()
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (table,)).scalar_one()
    for old, new in replacements:
        if sql.count(old) != 1:
            raise RuntimeError(f"{old!r} not found once in the definition of {table}")
        sql = sql.replace(old, new)
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (sql, table))
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _edit_sqlite_table("capacity_alert", [
            *[(f"\t{name} INTEGER NOT NULL, ", f"\t{name} INTEGER, ") for name in LOOSENED],
            (f"CHECK ({LEVEL_BEFORE})", f"CHECK ({LEVEL_NOW})")])
        bind.exec_driver_sql("ALTER TABLE capacity_alert ADD COLUMN store_id INTEGER REFERENCES store (id)")
    else:
        for name in LOOSENED:
            op.alter_column("capacity_alert", name, existing_type=sa.Integer(), nullable=True)
        op.drop_constraint("ck_capacity_alert_level", "capacity_alert", type_="check")
        op.create_check_constraint("ck_capacity_alert_level", "capacity_alert", LEVEL_NOW)
        op.add_column("capacity_alert", sa.Column("store_id", sa.Integer(), sa.ForeignKey("store.id"), nullable=True))
    op.add_column("capacity_alert", sa.Column("detail", sa.Text(), nullable=True))
    op.create_index("uq_capacity_alert_open_store", "capacity_alert", ["store_id", "level"], unique=True,
                    sqlite_where=OPEN_EPISODE, postgresql_where=OPEN_EPISODE)
    op.add_column("contact_code", sa.Column("link_problem", sa.Text(), nullable=True))
    op.add_column("contact_code", sa.Column("link_pending_since", sa.DateTime(), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_column("contact_code", "link_pending_since")
    op.drop_column("contact_code", "link_problem")
    op.drop_index("uq_capacity_alert_open_store", table_name="capacity_alert")
    # Incidents have no account: they cannot live in the older table.
    op.execute("DELETE FROM alert_delivery WHERE alert_id IN (SELECT id FROM capacity_alert WHERE account_id IS NULL "
               "OR level IN ('code_stale', 'links_quota_low'))")
    op.execute("DELETE FROM capacity_alert WHERE account_id IS NULL OR level IN ('code_stale', 'links_quota_low')")
    op.drop_column("capacity_alert", "detail")
    if bind.dialect.name == "sqlite":
        # SQLite drops no column a foreign key uses: the reference goes first.
        _edit_sqlite_table("capacity_alert", [(" store_id INTEGER REFERENCES store (id)", " store_id INTEGER")])
        bind.exec_driver_sql("ALTER TABLE capacity_alert DROP COLUMN store_id")
        _edit_sqlite_table("capacity_alert", [
            *[(f"\t{name} INTEGER, ", f"\t{name} INTEGER NOT NULL, ") for name in LOOSENED],
            (f"CHECK ({LEVEL_NOW})", f"CHECK ({LEVEL_BEFORE})")])
    else:
        op.drop_column("capacity_alert", "store_id")
        op.drop_constraint("ck_capacity_alert_level", "capacity_alert", type_="check")
        op.create_check_constraint("ck_capacity_alert_level", "capacity_alert", LEVEL_BEFORE)
        for name in LOOSENED:
            op.alter_column("capacity_alert", name, existing_type=sa.Integer(), nullable=False)

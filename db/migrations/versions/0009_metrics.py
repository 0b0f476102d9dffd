"""metrics: the roll-up takes in pending facts instead of recomputing dirty days;
figures follow each store's current branch; the zone the days are cut in is
recorded; adds attributed by State become their own fact.

Existing facts are filed under their store's current branch and all become
pending (the roll-up is rebuilt by its next run). Days already stored were cut
in CONSOLE_TIMEZONE: run this with the console's environment.

Revision ID: 0009_metrics
Revises: 0008_alerts
"""

import os
from datetime import UTC, date
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = "0009_metrics"
down_revision = "0008_alerts"
branch_labels = None
depends_on = None

FACT_KEY = ("step", "user_key", "day", "store_id", "platform")
EPOCH = date(1970, 1, 1)


def _fact_columns() -> list[sa.Column]:
    return [
        sa.Column("step", sa.String(length=24), nullable=False),
        sa.Column("user_key", sa.String(length=128), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
    ]


def _state_adds(bind, zone: ZoneInfo) -> list[dict]:
    """`added_by_state` facts for the adds whose State named their store."""
    rows = bind.execute(sa.text(
        "SELECT c.external_userid, c.occurred_at, c.store_id, s.branch_id FROM contact_event c "
        "JOIN store s ON s.id = c.store_id "
        "WHERE c.change_type = 'add_external_contact' AND trim(c.state) = s.crm_store_id")
        .columns(sa.column("external_userid"), sa.column("occurred_at", sa.DateTime()), sa.column("store_id"),
                 sa.column("branch_id"))).fetchall()
    facts = {}
    for external, occurred_at, store_id, branch_id in rows:
        day = (occurred_at.replace(tzinfo=UTC).astimezone(zone).date() - EPOCH).days
        facts[(external, day, store_id)] = {"step": "added_by_state", "user_key": external, "day": day,
                                            "store_id": store_id, "platform": "", "branch_id": branch_id}
    return list(facts.values())


def upgrade() -> None:
    op.create_table("funnel_pending", *_fact_columns(),
                    sa.PrimaryKeyConstraint(*FACT_KEY, name="pk_funnel_pending"))
    op.create_table(
        "funnel_store_branch",
        sa.Column("store_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("store_id"),
    )
    op.create_table(
        "funnel_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # The roll-up reads facts by user (primary key), the store figures by store
    # (now a covering index); the day and branch indexes are unused.
    with op.batch_alter_table("funnel_activity") as batch_op:
        batch_op.drop_index("ix_funnel_activity_day")
        batch_op.drop_index("ix_funnel_activity_branch_day")
        batch_op.drop_index("ix_funnel_activity_store_day")
        batch_op.create_index("ix_funnel_activity_store_day_user", ["store_id", "day", "step", "user_key", "platform"],
                              unique=False)

    bind = op.get_bind()
    zone_name = os.environ.get("CONSOLE_TIMEZONE") or "Asia/Shanghai"
    bind.execute(sa.text("INSERT INTO funnel_state (id, zone) VALUES (1, :zone)"), {"zone": zone_name})
    bind.execute(sa.text(
        "UPDATE funnel_activity "
        "SET branch_id = (SELECT s.branch_id FROM store s WHERE s.id = funnel_activity.store_id) "
        "WHERE EXISTS (SELECT 1 FROM store s WHERE s.id = funnel_activity.store_id "
        "AND s.branch_id <> funnel_activity.branch_id)"))
    activity = sa.table("funnel_activity", *[sa.column(name) for name in (*FACT_KEY, "branch_id")])
    facts = _state_adds(bind, ZoneInfo(zone_name))
    for start in range(0, len(facts), 5000):
        bind.execute(activity.insert(), facts[start:start + 5000])
    bind.execute(sa.text("INSERT INTO funnel_store_branch (store_id, branch_id) SELECT id, branch_id FROM store"))
    bind.execute(sa.text(f"INSERT INTO funnel_pending ({', '.join(FACT_KEY)}) "
                         f"SELECT {', '.join(FACT_KEY)} FROM funnel_activity"))
    bind.execute(sa.text("DELETE FROM funnel_rollup"))
    op.drop_table("funnel_dirty_day")


def downgrade() -> None:
    op.create_table(
        "funnel_dirty_day",
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    bind = op.get_bind()
    bind.execute(sa.text("INSERT INTO funnel_dirty_day (day, version) SELECT DISTINCT day, 1 FROM funnel_pending "
                         "WHERE step <> 'added_by_state'"))
    bind.execute(sa.text("DELETE FROM funnel_activity WHERE step = 'added_by_state'"))
    bind.execute(sa.text("DELETE FROM funnel_rollup WHERE step = 'added_by_state'"))
    with op.batch_alter_table("funnel_activity") as batch_op:
        batch_op.drop_index("ix_funnel_activity_store_day_user")
        batch_op.create_index("ix_funnel_activity_store_day", ["store_id", "day"], unique=False)
        batch_op.create_index("ix_funnel_activity_day", ["day", "step", "user_key"], unique=False)
        batch_op.create_index("ix_funnel_activity_branch_day", ["branch_id", "day"], unique=False)
    op.drop_table("funnel_state")
    op.drop_table("funnel_store_branch")
    op.drop_table("funnel_pending")

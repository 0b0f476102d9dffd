"""Per-branch binding counters maintained by triggers.

Revision ID: 0006_branch_stats
Revises: 0005_events
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_branch_stats"
down_revision = "0005_events"
branch_labels = None
depends_on = None

REBUILD = """
INSERT INTO branch_binding_stats (branch_id, stores, open_stores, bound_open_stores)
SELECT b.id,
       (SELECT count(*) FROM store s WHERE s.branch_id = b.id),
       (SELECT count(*) FROM store s WHERE s.branch_id = b.id AND s.status = 'open'),
       (SELECT count(*) FROM store s JOIN binding k ON k.store_id = s.id AND k.ended_at IS NULL
         WHERE s.branch_id = b.id AND s.status = 'open')
FROM branch b
"""

# A store counts as "bound" while it has a current binding (ended_at IS NULL).
BOUND = "EXISTS (SELECT 1 FROM binding k WHERE k.store_id = {row}.id AND k.ended_at IS NULL)"

SQLITE_TRIGGERS = [
    """CREATE TRIGGER trg_stats_branch_insert AFTER INSERT ON branch BEGIN
         INSERT INTO branch_binding_stats (branch_id, stores, open_stores, bound_open_stores)
         VALUES (NEW.id, 0, 0, 0);
       END""",
    """CREATE TRIGGER trg_stats_store_insert AFTER INSERT ON store BEGIN
         UPDATE branch_binding_stats SET stores = stores + 1, open_stores = open_stores + (NEW.status = 'open'),
           bound_open_stores = bound_open_stores + (NEW.status = 'open' AND """ + BOUND.format(row="NEW") + """)
         WHERE branch_id = NEW.branch_id;
       END""",
    """CREATE TRIGGER trg_stats_store_update AFTER UPDATE OF status, branch_id ON store BEGIN
         UPDATE branch_binding_stats SET stores = stores - 1, open_stores = open_stores - (OLD.status = 'open'),
           bound_open_stores = bound_open_stores - (OLD.status = 'open' AND """ + BOUND.format(row="OLD") + """)
         WHERE branch_id = OLD.branch_id;
         UPDATE branch_binding_stats SET stores = stores + 1, open_stores = open_stores + (NEW.status = 'open'),
           bound_open_stores = bound_open_stores + (NEW.status = 'open' AND """ + BOUND.format(row="NEW") + """)
         WHERE branch_id = NEW.branch_id;
       END""",
    """CREATE TRIGGER trg_stats_store_delete AFTER DELETE ON store BEGIN
         UPDATE branch_binding_stats SET stores = stores - 1, open_stores = open_stores - (OLD.status = 'open'),
           bound_open_stores = bound_open_stores - (OLD.status = 'open' AND """ + BOUND.format(row="OLD") + """)
         WHERE branch_id = OLD.branch_id;
       END""",
    """CREATE TRIGGER trg_stats_binding_insert AFTER INSERT ON binding WHEN NEW.ended_at IS NULL BEGIN
         UPDATE branch_binding_stats SET bound_open_stores = bound_open_stores + 1
         WHERE branch_id = (SELECT branch_id FROM store WHERE id = NEW.store_id AND status = 'open');
       END""",
    """CREATE TRIGGER trg_stats_binding_update AFTER UPDATE OF ended_at, store_id ON binding
       WHEN (OLD.ended_at IS NULL) <> (NEW.ended_at IS NULL) OR OLD.store_id <> NEW.store_id BEGIN
         UPDATE branch_binding_stats SET bound_open_stores = bound_open_stores - 1
         WHERE OLD.ended_at IS NULL
           AND branch_id = (SELECT branch_id FROM store WHERE id = OLD.store_id AND status = 'open');
         UPDATE branch_binding_stats SET bound_open_stores = bound_open_stores + 1
         WHERE NEW.ended_at IS NULL
           AND branch_id = (SELECT branch_id FROM store WHERE id = NEW.store_id AND status = 'open');
       END""",
    """CREATE TRIGGER trg_stats_binding_delete AFTER DELETE ON binding WHEN OLD.ended_at IS NULL BEGIN
         UPDATE branch_binding_stats SET bound_open_stores = bound_open_stores - 1
         WHERE branch_id = (SELECT branch_id FROM store WHERE id = OLD.store_id AND status = 'open');
       END""",
]

POSTGRES_TRIGGERS = [
    """CREATE FUNCTION stats_branch() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         INSERT INTO branch_binding_stats (branch_id, stores, open_stores, bound_open_stores)
         VALUES (NEW.id, 0, 0, 0);
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER trg_stats_branch_insert AFTER INSERT ON branch
       FOR EACH ROW EXECUTE FUNCTION stats_branch()""",
    """CREATE FUNCTION stats_store() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP IN ('UPDATE', 'DELETE') THEN
           UPDATE branch_binding_stats SET stores = stores - 1,
             open_stores = open_stores - (OLD.status = 'open')::int,
             bound_open_stores = bound_open_stores - (OLD.status = 'open' AND """ + BOUND.format(row="OLD") + """)::int
           WHERE branch_id = OLD.branch_id;
         END IF;
         IF TG_OP IN ('INSERT', 'UPDATE') THEN
           UPDATE branch_binding_stats SET stores = stores + 1,
             open_stores = open_stores + (NEW.status = 'open')::int,
             bound_open_stores = bound_open_stores + (NEW.status = 'open' AND """ + BOUND.format(row="NEW") + """)::int
           WHERE branch_id = NEW.branch_id;
         END IF;
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER trg_stats_store AFTER INSERT OR DELETE OR UPDATE OF status, branch_id ON store
       FOR EACH ROW EXECUTE FUNCTION stats_store()""",
    """CREATE FUNCTION stats_binding() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.ended_at IS NULL THEN
           UPDATE branch_binding_stats SET bound_open_stores = bound_open_stores - 1
           WHERE branch_id = (SELECT branch_id FROM store WHERE id = OLD.store_id AND status = 'open');
         END IF;
         IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.ended_at IS NULL THEN
           UPDATE branch_binding_stats SET bound_open_stores = bound_open_stores + 1
           WHERE branch_id = (SELECT branch_id FROM store WHERE id = NEW.store_id AND status = 'open');
         END IF;
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER trg_stats_binding AFTER INSERT OR DELETE OR UPDATE OF ended_at, store_id ON binding
       FOR EACH ROW EXECUTE FUNCTION stats_binding()""",
]

SQLITE_DROPS = ["trg_stats_branch_insert", "trg_stats_store_insert", "trg_stats_store_update",
                "trg_stats_store_delete", "trg_stats_binding_insert", "trg_stats_binding_update",
                "trg_stats_binding_delete"]


def upgrade() -> None:
    op.create_table(
        "branch_binding_stats",
        sa.Column("branch_id", sa.Integer(), sa.ForeignKey("branch.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("stores", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("open_stores", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("bound_open_stores", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute(REBUILD)
    triggers = POSTGRES_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER trg_stats_binding ON binding")
        op.execute("DROP TRIGGER trg_stats_store ON store")
        op.execute("DROP TRIGGER trg_stats_branch_insert ON branch")
        op.execute("DROP FUNCTION stats_binding(), stats_store(), stats_branch()")
    else:
        for name in SQLITE_DROPS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("branch_binding_stats")

"""binding imports: the same file may be committed again; the branches a batch touched

The unique constraint on binding_import.sha256 becomes a plain index (a repeat
that would change nothing is refused by the service, not the database). Each
row records its store's branch, and binding_import_branch lists the branches a
batch touched with that branch's figures, so that the managers of every branch
an HQ import touched see it in 导入记录. Existing batches are filled in from
their rows.

Revision ID: 0007_imports
Revises: 0006_branch_stats
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_imports"
down_revision = "0006_branch_stats"
branch_labels = None
depends_on = None

# Names SQLite's reflection gives the unnamed constraints of 0002 in batch mode.
_SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}

_FILL_ROW_BRANCHES = """
UPDATE binding_import_row
SET branch_id = (SELECT store.branch_id FROM store WHERE store.crm_store_id = binding_import_row.crm_store_id)
"""

# Per batch and branch, from the rows; accounts created are known per batch only,
# so a batch made for one branch keeps its figure and a multi-branch one shows 0.
_FILL_BATCH_BRANCHES = """
INSERT INTO binding_import_branch (import_id, branch_id, total_rows, new_count, changed_count, unchanged_count,
                                   warning_count, accounts_created)
SELECT r.import_id, r.branch_id, count(*),
       sum(CASE WHEN r.outcome = 'new' THEN 1 ELSE 0 END),
       sum(CASE WHEN r.outcome = 'changed' THEN 1 ELSE 0 END),
       sum(CASE WHEN r.outcome = 'unchanged' THEN 1 ELSE 0 END),
       sum(CASE WHEN r.warnings_json IS NOT NULL THEN 1 ELSE 0 END),
       max(CASE WHEN b.branch_id = r.branch_id THEN b.accounts_created ELSE 0 END)
FROM binding_import_row r JOIN binding_import b ON b.id = r.import_id
WHERE r.branch_id IS NOT NULL
GROUP BY r.import_id, r.branch_id
"""


def _sha256_unique_name(bind) -> str:
    return next(c["name"] for c in sa.inspect(bind).get_unique_constraints("binding_import")
                if c["column_names"] == ["sha256"])


def _rebuild_batches_on_sqlite(change) -> None:
    """SQLite changes a constraint by rebuilding the table. Foreign keys are on
    (and cannot be switched off inside the migration's transaction), so the
    rows that reference the batches step aside while it is rebuilt."""
    op.execute("CREATE TEMP TABLE binding_import_row_kept AS SELECT * FROM binding_import_row")
    op.execute("DELETE FROM binding_import_row")
    with op.batch_alter_table("binding_import", naming_convention=_SQLITE_NAMES) as batch_op:
        change(batch_op)
    op.execute("INSERT INTO binding_import_row SELECT * FROM binding_import_row_kept")
    op.execute("DROP TABLE binding_import_row_kept")


def _sha256_index_not_unique(batch_op) -> None:
    batch_op.drop_constraint("uq_binding_import_sha256", type_="unique")
    batch_op.create_index("ix_binding_import_sha256", ["sha256"])


def _sha256_unique_again(batch_op) -> None:
    batch_op.drop_index("ix_binding_import_sha256")
    batch_op.create_unique_constraint("uq_binding_import_sha256", ["sha256"])


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _rebuild_batches_on_sqlite(_sha256_index_not_unique)
    else:
        op.drop_constraint(_sha256_unique_name(bind), "binding_import", type_="unique")
        op.create_index("ix_binding_import_sha256", "binding_import", ["sha256"])

    with op.batch_alter_table("binding_import_row") as batch_op:
        batch_op.add_column(sa.Column("branch_id", sa.Integer(), sa.ForeignKey(
            "branch.id", name="fk_binding_import_row_branch_id_branch"), nullable=True))
    op.execute(_FILL_ROW_BRANCHES)

    op.create_table(
        "binding_import_branch",
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("new_count", sa.Integer(), nullable=False),
        sa.Column("changed_count", sa.Integer(), nullable=False),
        sa.Column("unchanged_count", sa.Integer(), nullable=False),
        sa.Column("warning_count", sa.Integer(), nullable=False),
        sa.Column("accounts_created", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["import_id"], ["binding_import.id"]),
        sa.ForeignKeyConstraint(["branch_id"], ["branch.id"]),
        sa.PrimaryKeyConstraint("import_id", "branch_id"),
    )
    with op.batch_alter_table("binding_import_branch") as batch_op:
        batch_op.create_index("ix_binding_import_branch_branch", ["branch_id", "import_id"])
    op.execute(_FILL_BATCH_BRANCHES)


def downgrade() -> None:
    with op.batch_alter_table("binding_import_branch") as batch_op:
        batch_op.drop_index("ix_binding_import_branch_branch")
    op.drop_table("binding_import_branch")
    with op.batch_alter_table("binding_import_row") as batch_op:
        batch_op.drop_column("branch_id")
    # Fails while one file is recorded twice: those batches would first have to go.
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_batches_on_sqlite(_sha256_unique_again)
    else:
        op.drop_index("ix_binding_import_sha256", "binding_import")
        op.create_unique_constraint("binding_import_sha256_key", "binding_import", ["sha256"])

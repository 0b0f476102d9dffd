"""problems: the errors kept for people to read later (an account's sync error,
an alert delivery's and a channel's last error, a job run's error) are stored as
a catalog key and its parameters (`base.problems`) instead of rendered Chinese;
the words stored so far are kept as they are, as the parameter of
`common.legacy_text`. The funnel roll-up's job id `metrics_rollup` becomes
`funnel.rollup` in the job runs and requests.

Downgrading renders every stored problem back into Chinese words.

Revision ID: 0010_problems
Revises: 0009_metrics
"""

import sqlalchemy as sa
from alembic import op

from base.problems import LEGACY_KEY, Problem
from i18n import error_text

revision = "0010_problems"
down_revision = "0009_metrics"
branch_labels = None
depends_on = None

# (table, column) of every stored problem.
PROBLEM_COLUMNS = [
    ("account", "sync_error"),
    ("alert_channel", "last_error"),
    ("alert_delivery", "last_error"),
    ("jobrun", "error"),
]
JOB_TABLES = ["jobrun", "jobrequest"]
OLD_ROLLUP_JOB, NEW_ROLLUP_JOB = "metrics_rollup", "funnel.rollup"
BATCH = 1000


def _convert(table: str, column: str, convert) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL")).all()
    update = sa.text(f"UPDATE {table} SET {column} = :value WHERE id = :id")
    for start in range(0, len(rows), BATCH):
        bind.execute(update, [{"id": row_id, "value": convert(value)} for row_id, value in rows[start:start + BATCH]])


def _rename_job(old: str, new: str) -> None:
    for table in JOB_TABLES:
        op.get_bind().execute(sa.text(f"UPDATE {table} SET job_id = :new WHERE job_id = :old"),
                              {"old": old, "new": new})


def upgrade() -> None:
    for table, column in PROBLEM_COLUMNS:
        _convert(table, column, lambda text: Problem(LEGACY_KEY, {"text": text}).encode())
    _rename_job(OLD_ROLLUP_JOB, NEW_ROLLUP_JOB)


def downgrade() -> None:
    _rename_job(NEW_ROLLUP_JOB, OLD_ROLLUP_JOB)
    for table, column in PROBLEM_COLUMNS:
        _convert(table, column, lambda stored: error_text(Problem.decode(stored)))

"""Migration 0007_imports on a database that already has batches: each row
learns its store's branch, each batch the branches it touched, and one file
may then be recorded twice. SQLite and PostgreSQL."""

import uuid

import pytest
from alembic import command
from sqlalchemy import text

from db.engine import get_engine
from db.migrate import alembic_config


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url_at_0006(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'console.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"imports_migration_{uuid.uuid4().hex[:8]}")
    command.upgrade(alembic_config(url), "0006_branch_stats")
    return url


def test_existing_batches_are_filled_in_and_the_hash_no_longer_unique(url_at_0006):
    engine = get_engine(url_at_0006)
    with engine.begin() as db:
        db.execute(text("INSERT INTO branch (id, code, name, created_at) VALUES "
                        "(1, 'BJ01', '北京', '2026-01-01'), (2, 'SH01', '上海', '2026-01-01')"))
        db.execute(text("INSERT INTO store (id, crm_store_id, name, branch_id, status, version, created_at, "
                        "updated_at) VALUES (1, '000101', 'a', 1, 'open', 1, '2026-01-01', '2026-01-01'), "
                        "(2, '000201', 'b', 2, 'open', 1, '2026-01-01', '2026-01-01')"))
        batch = ("INSERT INTO binding_import (id, branch_id, uploaded_by_name, filename, sha256, total_rows, "
                 "new_count, changed_count, unchanged_count, warning_count, accounts_created, committed_at) "
                 "VALUES ({id}, {branch}, 'hq', 'f.csv', '{sha}', {rows}, {rows}, 0, 0, 0, {rows}, '2026-01-02')")
        db.execute(text(batch.format(id=1, branch="NULL", sha="a" * 64, rows=2)))
        db.execute(text(batch.format(id=2, branch=1, sha="b" * 64, rows=1)))
        db.execute(text("INSERT INTO binding_import_row (import_id, row_number, crm_store_id, store_name, "
                        "wecom_userid, wecom_name, outcome, warnings_json) VALUES "
                        "(1, 2, '000101', '', 'u1', 'n', 'new', NULL), (1, 3, '000201', '', 'u2', 'n', 'new', '[]'), "
                        "(2, 2, '000101', '', 'u1', 'n', 'new', NULL)"))
    command.upgrade(alembic_config(url_at_0006), "head")
    with engine.begin() as db:
        rows = db.execute(text("SELECT import_id, crm_store_id, branch_id FROM binding_import_row "
                               "ORDER BY import_id, row_number")).all()
        assert [tuple(r) for r in rows] == [(1, "000101", 1), (1, "000201", 2), (2, "000101", 1)]
        branches = db.execute(text("SELECT import_id, branch_id, total_rows, new_count, warning_count, "
                                   "accounts_created FROM binding_import_branch ORDER BY import_id, branch_id")).all()
        assert [tuple(b) for b in branches] == [(1, 1, 1, 1, 0, 0), (1, 2, 1, 1, 1, 0), (2, 1, 1, 1, 0, 1)]
        db.execute(text(batch.format(id=3, branch=1, sha="b" * 64, rows=1)))  # the same file again
        db.execute(text("DELETE FROM binding_import WHERE id = 3"))
    command.downgrade(alembic_config(url_at_0006), "0006_branch_stats")
    command.upgrade(alembic_config(url_at_0006), "head")

"""`python -m console import-stores` says which import run wrote the list and
when it finished, finishes a run an earlier process left half-applied before
it reads, and refuses while another process is applying one."""

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from base.timeutil import utcnow
from core.auth.permissions import system_actor
from core.directory import stores
from core.import_runs import runs
from db.engine import get_engine
from db.models import ImportRun, Store
from tests.cli.test_commands import cli

HEADER = "分公司编码,分公司名称,CRM门店ID,门店名称,状态\n"


def store_list(stores_count: int, suffix: str) -> str:
    return HEADER + "".join(f"N1,新分公司,{i:06d},门店{i}{suffix},营业\n" for i in range(stores_count))


class Killed(Exception):
    pass


def half_applied_run(session, monkeypatch) -> ImportRun:
    """A run of 100 stores in steps of 10 whose process died after its first chunk."""
    monkeypatch.setattr(stores, "STEP_STORES", 10)

    def dies(_seconds: float) -> None:
        with Session(get_engine()) as looking:
            if looking.exec(select(ImportRun).where(ImportRun.state == "applying")).first() is not None:
                raise Killed  # after the first chunk, not between batches of staged steps

    monkeypatch.setattr(runs, "sleep", dies)
    with pytest.raises(Killed):
        stores.import_stores(session=session, actor=system_actor("crm"), data=store_list(100, "").encode(),
                             filename="crm.csv")
    return session.exec(select(ImportRun)).one()


def test_the_command_names_its_run_and_when_it_finished(db_url, tmp_path):
    path = tmp_path / "stores.csv"
    path.write_text(store_list(30, ""), encoding="utf-8")
    done = cli("import-stores", str(path), db_url=db_url)
    assert done.returncode == 0, done.stderr
    assert "imported 30 rows: 30 new" in done.stdout and "import run #1: finished " in done.stdout


def test_a_run_left_half_applied_is_finished_before_the_command_reads(db_url, session, monkeypatch, tmp_path):
    run = half_applied_run(session, monkeypatch)
    assert 0 < len(session.exec(select(Store)).all()) < 100
    session.exec(update(ImportRun).where(col(ImportRun.id) == run.id)
                 .values(heartbeat_at=utcnow() - runs.ABANDONED_AFTER * 2))
    session.commit()
    path = tmp_path / "stores.csv"
    path.write_text(store_list(100, ""), encoding="utf-8")
    done = cli("import-stores", str(path), db_url=db_url)
    assert done.returncode == 0, done.stderr
    assert f"import run #{run.id}, interrupted earlier, was finished first" in done.stdout
    assert "0 new, 0 updated, 100 unchanged" in done.stdout


def test_refused_while_another_process_applies_a_run(db_url, session, monkeypatch, tmp_path):
    half_applied_run(session, monkeypatch)  # its heartbeat is fresh: its process may still be at work
    path = tmp_path / "stores.csv"
    path.write_text(store_list(100, "（新）"), encoding="utf-8")
    refused = cli("import-stores", str(path), db_url=db_url)
    assert refused.returncode == 1 and "导入进行中" in refused.stderr and "crm.csv" in refused.stderr
    session.expire_all()
    assert not any(name.endswith("（新）") for name in session.exec(select(Store.name)).all())

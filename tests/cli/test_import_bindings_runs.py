"""`python -m console import-bindings` on SQLite writes the sheet as an import
run: it says when the run finished, and while another import is being applied
it is refused with 导入进行中 and writes nothing."""

from datetime import datetime

from sqlmodel import select

from base.timeutil import utcnow
from console.cli import main
from db.models import Binding, BindingImport, ImportRun, Role
from tests.support.binding_sheets import csv_bytes


def test_the_cli_names_the_run_and_when_it_finished(org, make_user, tmp_path, capsys, session):
    make_user(Role.branch_manager, org["north"], username="bj_manager")
    sheet = tmp_path / "good.csv"
    sheet.write_bytes(csv_bytes([["BJ01", "000101", "", "good.one", "甲"]]))
    assert main(["import-bindings", str(sheet), "--user", "bj_manager"]) == 0
    out = capsys.readouterr().out
    run = session.exec(select(ImportRun)).one()
    assert (run.kind, run.state) == ("bindings", "done")
    assert f"import run #{run.id}: {run.steps_total} steps, finished " in out
    assert "imported batch #" in out


def test_the_cli_is_refused_while_another_import_is_being_applied(org, make_user, tmp_path, capsys, session):
    make_user(Role.branch_manager, org["north"], username="bj_manager")
    session.add(ImportRun(kind="stores", state="applying", actor_name="crm", actor_role="hq_admin",
                          filename="crm.csv", steps_total=10, steps_done=4, started_at=datetime(2026, 12, 3, 2),
                          heartbeat_at=utcnow()))
    session.commit()
    sheet = tmp_path / "good.csv"
    sheet.write_bytes(csv_bytes([["BJ01", "000101", "", "good.one", "甲"]]))
    assert main(["import-bindings", str(sheet), "--user", "bj_manager"]) != 0
    assert "导入进行中" in capsys.readouterr().err
    session.expire_all()
    assert session.exec(select(Binding)).all() == [] and session.exec(select(BindingImport)).all() == []

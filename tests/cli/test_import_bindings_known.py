"""`import-bindings` checks every account against WeCom (issue 11 item 5): unknown ones
are row errors, a WeCom that does not answer needs --accept-unchecked."""

import pytest
from sqlmodel import select

from console.cli import main
from core.directory import known_members
from db.models import Binding, BindingImport, Role
from tests.support.binding_sheets import csv_bytes
from tests.support.wecom_members import configure_wecom, members_simulator, silent_server


@pytest.fixture
def sheet(org, make_user, tmp_path):
    make_user(Role.branch_manager, org["north"], username="bj_manager")
    path = tmp_path / "bindings.csv"
    path.write_bytes(csv_bytes([["BJ01", "000101", "", "known.one", "甲"], ["BJ01", "000102", "", "gone.one", "乙"]]))
    return path


def test_unknown_or_inactive_accounts_are_row_errors(sheet, monkeypatch, capsys, session):
    sim = members_simulator()
    try:
        configure_wecom(monkeypatch, sim.base_url)
        assert main(["import-bindings", str(sheet), "--user", "bj_manager"]) == 1
    finally:
        sim.stop()
    err = capsys.readouterr().err
    assert "row 3: 企微账号 gone.one 在企业微信中已停用" in err and "row 2:" not in err
    assert session.exec(select(Binding)).all() == []


def test_wecom_not_answering_needs_the_flag(sheet, monkeypatch, capsys, session):
    monkeypatch.setattr(known_members, "TIMEOUT_SECONDS", 0.5)
    with silent_server() as url:
        configure_wecom(monkeypatch, url)
        assert main(["import-bindings", str(sheet), "--user", "bj_manager"]) == 1
        err = capsys.readouterr().err
        assert "暂时无法向企业微信核对企微账号" in err and "--accept-unchecked" in err
        assert session.exec(select(BindingImport)).all() == []
        assert main(["import-bindings", str(sheet), "--user", "bj_manager", "--accept-unchecked"]) == 0
    session.expire_all()
    assert len(session.exec(select(Binding)).all()) == 2

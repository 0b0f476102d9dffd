"""`python -m console set-entries`: the bindings page's bulk show/hide as a console
user, from IDs, a plain list or a sheet; all or nothing with every refused store
printed; audited as that user."""

from sqlmodel import select

from console.cli import main
from db.models import AuditEntry, Binding, Role
from tests.support.binding_sheets import xlsx_bytes
from tests.support.factories import bind


def flags(session) -> dict[int, bool]:
    session.expire_all()
    return {b.id: b.shown for b in session.exec(select(Binding)).all()}


def test_show_by_store_ids_is_audited_as_the_user(session, org, make_user, capsys):
    make_user(Role.hq_operator, username="ops")
    first, second = bind(session, "000101", "a1"), bind(session, "000102", "a2", shown=True, reviewed=True)
    assert main(["set-entries", "--show", "--user", "ops", "--store", "000101", "000102"]) == 0
    assert "shown: 1 changed, 1 already so" in capsys.readouterr().out
    assert flags(session) == {first.id: True, second.id: True}
    audit = session.exec(select(AuditEntry).where(AuditEntry.action == "binding.show")).one()
    assert (audit.actor_name, audit.entity_id) == ("ops", str(first.id))


def test_one_refused_store_changes_nothing_and_every_problem_is_printed(session, org, make_user, capsys):
    make_user(Role.hq_admin, username="admin")
    fine = bind(session, "000101", "a1")
    full = bind(session, "000102", "a2", count=5000)
    assert main(["set-entries", "--show", "--user", "admin", "--store", "000101", "000102"]) == 1
    err = capsys.readouterr().err
    assert "000102 北京海淀银泰店: 账号已满" in err
    assert flags(session) == {fine.id: False, full.id: False}
    assert main(["set-entries", "--hide", "--user", "admin", "--store", "000101", "999", "000201"]) == 1
    err = capsys.readouterr().err
    assert "999 : 没有这个 CRM 门店ID" in err and "000201 上海浦东陆家嘴店: 门店没有当前绑定" in err
    assert session.exec(select(AuditEntry).where(AuditEntry.action.in_(["binding.show", "binding.hide"]))).all() == []


def test_ids_from_a_plain_list_or_a_sheet_keep_leading_zeros(session, org, make_user, tmp_path, capsys):
    make_user(Role.hq_operator, username="ops")
    one, other = bind(session, "000101", "a1", shown=True), bind(session, "101", "a2", shown=True)
    listed = tmp_path / "stores.txt"
    listed.write_text("000101\n\n", encoding="utf-8")
    assert main(["set-entries", "--hide", "--user", "ops", "--file", str(listed)]) == 0
    assert flags(session) == {one.id: False, other.id: True}
    sheet = tmp_path / "stores.xlsx"
    sheet.write_bytes(xlsx_bytes([["北京东城王府井店", "101"]], headers=["门店名称", "CRM门店ID"]))
    assert main(["set-entries", "--hide", "--user", "ops", "--file", str(sheet)]) == 0
    assert flags(session) == {one.id: False, other.id: False}


def test_a_branch_manager_may_not_show_entries(session, org, make_user, capsys):
    make_user(Role.branch_manager, org["north"], username="bj")
    binding = bind(session, "000101", "a1")
    assert main(["set-entries", "--show", "--user", "bj", "--store", "000101"]) == 1
    assert "error:" in capsys.readouterr().err
    assert flags(session) == {binding.id: False}

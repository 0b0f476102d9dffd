"""The binding sheet's 备用企微账号 column: parsed in order with every separator,
judged (row errors in Chinese), counted in the preview, committed all or nothing."""

import pytest
from sqlmodel import col, select

from base.errors import ConcurrentEdit, DomainError
from core.bindings.imports import commit as sheet_commit
from core.bindings.imports import judge, read, template
from db.models import Account, AccountStatus, AuditEntry, Binding, Role, StandbyAccount
from i18n import error_text
from tests.support.binding_sheets import HEADERS, csv_bytes, xlsx_bytes
from tests.support.factories import bind, find_store, make_account

WITH_STANDBY = [*HEADERS, "备用企微账号"]


@pytest.fixture
def manager(org, make_user):
    return make_user(Role.branch_manager, org["north"])


def run_preview(session, actor, data, filename="bindings.csv"):
    return judge.preview(session=session, actor=actor, parsed=read.parse_sheet(data, filename))


def standby_of(session, crm_store_id: str) -> list[str]:
    store = find_store(session, crm_store_id)
    return [session.get_one(Account, r.account_id).userid for r in session.exec(
        select(StandbyAccount).where(StandbyAccount.store_id == store.id)
        .order_by(col(StandbyAccount.position))).all()]


def test_the_template_has_the_column():
    assert template.template_headers()[-1] == "备用企微账号"


def test_every_separator_in_order_and_a_commit_that_reserves_them(session, manager):
    data = xlsx_bytes([["BJ01", "000101", "", "zhang.san", "张三", "s1, s2，s3;s4、s5\ns6"],
                       ["BJ01", "101", "", "li.si", "李四", ""]], headers=WITH_STANDBY)
    preview = run_preview(session, manager.actor, data, "b.xlsx")
    assert preview.ok, [[i.key for i in r.errors] for r in preview.rows]
    result = sheet_commit.commit(session=session, actor=manager.actor, preview=preview)
    session.commit()
    assert result.new_count == 2
    assert standby_of(session, "000101") == ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert standby_of(session, "101") == []
    created = session.exec(select(Account).where(Account.userid == "s1")).one()
    assert created.status == AccountStatus.standby
    assert [e.action for e in session.exec(select(AuditEntry)).all()].count("standby.update") == 1


def test_a_standby_only_change_counts_as_changed_and_keeps_the_binding(session, manager):
    binding = bind(session, "000101", "zhang.san", shown=True, reviewed=True)
    rows = [["BJ01", "000101", "", "zhang.san", "张三", "spare1"]]
    preview = run_preview(session, manager.actor, csv_bytes(rows, headers=WITH_STANDBY))
    assert (preview.changed_count, preview.unchanged_count) == (1, 0)
    sheet_commit.commit(session=session, actor=manager.actor, preview=preview)
    session.commit()
    session.refresh(binding)
    assert binding.ended_at is None and binding.shown   # the live entry is untouched
    assert standby_of(session, "000101") == ["spare1"]
    again = run_preview(session, manager.actor, csv_bytes(rows, headers=WITH_STANDBY) + b"\r\n")
    assert (again.changed_count, again.unchanged_count) == (0, 1)


def test_without_the_column_the_lists_stay(session, manager):
    store = find_store(session, "000101")
    bind(session, "000101", "zhang.san")
    session.add(StandbyAccount(store_id=store.id, account_id=make_account(session, "keep", status="standby").id))
    session.commit()
    preview = run_preview(session, manager.actor, csv_bytes([["BJ01", "000101", "", "zhang.san", "张三"]]))
    assert preview.unchanged_count == 1
    assert standby_of(session, "000101") == ["keep"]


def test_row_errors_name_each_problem_in_chinese(session, manager):
    bind(session, "000102", "busy")                                   # serves another store
    make_account(session, "off", status="disabled")
    other = make_account(session, "kept_elsewhere", status="standby")
    session.add(StandbyAccount(store_id=find_store(session, "000201").id, account_id=other.id))
    session.commit()
    rows = [["BJ01", "000101", "", "a1", "甲", "busy、off、kept_elsewhere、bad id!、a1"],
            ["BJ01", "101", "", "a2", "乙", "twice，twice"],
            ["BJ01", "000102", "", "busy", "丙", "shared"],
            ["BJ01", "000103", "", "a4", "丁", "shared"]]
    preview = run_preview(session, manager.actor, csv_bytes(rows, headers=WITH_STANDBY))
    texts = {r.values["crm_store_id"]: [error_text(DomainError(i.key, **i.params)) for i in r.errors]
             for r in preview.rows}
    assert "备用企微账号 busy 当前已绑定门店 000102，不能作为备用号" in texts["000101"]
    assert "备用企微账号 off 已停用" in texts["000101"]
    assert ("备用企微账号 kept_elsewhere 已是门店 000201 的备用号；一个备用号只能保留给一家门店"
            in texts["000101"])
    assert any("bad id!" in text and "格式不正确" in text for text in texts["000101"])
    assert "备用企微账号 a1 就是本行的企微账号" in texts["000101"]
    assert texts["101"] == ["备用企微账号 twice 在同一格中重复填写"]
    assert any("被多家门店填写" in text for text in texts["000102"])
    assert preview.error_count == 4


def test_an_account_reserved_for_another_store_cannot_be_bound_here(session, manager):
    spare = make_account(session, "spare", status="standby")
    session.add(StandbyAccount(store_id=find_store(session, "000201").id, account_id=spare.id))
    session.commit()
    preview = run_preview(session, manager.actor, csv_bytes([["BJ01", "000101", "", "spare", "备"]]))
    assert [i.key for i in preview.rows[0].errors] == ["binding_import.row.account_reserved"]


def test_the_commit_is_all_or_nothing_when_a_list_changed_since_the_preview(session, manager):
    rows = [["BJ01", "000101", "", "zhang.san", "张三", "spare1"],
            ["BJ01", "101", "", "li.si", "李四", "spare2"]]
    preview = run_preview(session, manager.actor, csv_bytes(rows, headers=WITH_STANDBY))
    assert preview.ok
    # Someone reserves spare2 for another store before the commit.
    spare2 = make_account(session, "spare2", status="standby")
    session.add(StandbyAccount(store_id=find_store(session, "000201").id, account_id=spare2.id))
    session.commit()
    with pytest.raises(ConcurrentEdit):
        sheet_commit.commit(session=session, actor=manager.actor, preview=preview)
    session.rollback()
    assert session.exec(select(Binding)).all() == []
    assert standby_of(session, "000101") == []
    assert session.exec(select(Account).where(Account.userid == "spare1")).first() is None


def test_the_command_line_shares_the_checks_and_writes_nothing_on_an_error(session, org, make_user, tmp_path,
                                                                          capsys):
    from console.cli import main

    make_user(Role.branch_manager, org["north"], username="bj_manager")
    bind(session, "000102", "busy")
    sheet = tmp_path / "standby.csv"
    sheet.write_bytes(csv_bytes([["BJ01", "000101", "", "zhang.san", "张三", "spare1、busy"]],
                                headers=WITH_STANDBY))
    assert main(["import-bindings", str(sheet), "--user", "bj_manager"]) == 1
    assert "备用企微账号 busy 当前已绑定门店 000102，不能作为备用号" in capsys.readouterr().err
    assert standby_of(session, "000101") == []
    sheet.write_bytes(csv_bytes([["BJ01", "000101", "", "zhang.san", "张三", "spare1"]], headers=WITH_STANDBY))
    assert main(["import-bindings", str(sheet), "--user", "bj_manager"]) == 0
    assert standby_of(session, "000101") == ["spare1"]


def test_a_stores_standby_named_as_its_account_takes_over_and_leaves_the_list(session, manager):
    bind(session, "000101", "zhang.san")
    spare = make_account(session, "spare", status="standby")
    session.add(StandbyAccount(store_id=find_store(session, "000101").id, account_id=spare.id))
    session.commit()
    preview = run_preview(session, manager.actor, csv_bytes([["BJ01", "000101", "", "spare", "备"]]))
    assert preview.ok and preview.changed_count == 1
    sheet_commit.commit(session=session, actor=manager.actor, preview=preview, confirm_warnings=True)
    session.commit()
    session.expire_all()
    assert session.get_one(Account, spare.id).status == AccountStatus.active
    assert standby_of(session, "000101") == []

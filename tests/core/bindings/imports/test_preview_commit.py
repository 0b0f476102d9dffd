"""Binding sheets: the file corpus, the row checks, commit, history, against SQLite."""

import json

import pytest
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit, DomainError, InvalidInput, PermissionDenied
from core.bindings import service as bindings
from core.bindings.imports import commit as sheet_commit
from core.bindings.imports import history, judge, read, template
from core.sheets import SheetError
from db.models import Account, AccountStatus, AuditEntry, Binding, BindingImport, BindingImportRow, Branch, Role
from i18n import error_text
from tests.support.binding_sheets import OLE_ENCRYPTED, PNG, csv_bytes, xlsx_bytes, zip_bomb
from tests.support.factories import find_store, make_account


def current(session: Session, crm_id: str) -> Binding | None:
    return bindings.current_for_store(session=session, store_id=find_store(session, crm_id).id)


def run_preview(session, actor, data, filename="bindings.csv", branch_id=None):
    parsed = read.parse_sheet(data, filename)
    return parsed, judge.preview(session=session, actor=actor, parsed=parsed, branch_id=branch_id)


def issues(row: judge.PreviewRow, kind: str = "errors") -> list[str]:
    return [i.key for i in getattr(row, kind)]


@pytest.fixture
def manager(org, make_user):
    return make_user(Role.branch_manager, org["north"])


@pytest.fixture
def operator(make_user):
    return make_user(Role.hq_operator)


def bind(session, actor, crm_id, userid):
    """Bound through the service, as an earlier import or review would have."""
    account = make_account(session, userid, name=f"{userid} 客服")
    binding = bindings.start_binding(session=session, actor=actor, store=find_store(session, crm_id), account=account)
    session.commit()
    return binding


# --- the file corpus ------------------------------------------------------------------------------------------

GOOD_ROWS = [["BJ01", "000101", "北京朝阳大悦城店", "zhang.san", "张三"],
             ["BJ01", "101", "北京东城王府井店", "li-si@corp", "李四"]]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_in_every_excel_encoding_reads_the_same(session, manager, encoding):
    _, preview = run_preview(session, manager.actor, csv_bytes(GOOD_ROWS, encoding=encoding))
    assert preview.ok and preview.new_count == 2
    assert [r.values["crm_store_id"] for r in preview.rows] == ["000101", "101"]
    assert preview.rows[0].values["wecom_name"] == "张三"


def test_english_aliases_any_order_and_extra_columns(session, manager):
    data = csv_bytes([["备注x", "zhang.san", "000101", "BJ01", "张三"]],
                     headers=["备注", "wecom_userid", "crm_store_id", "branch_code", "wecom_name"])
    _, preview = run_preview(session, manager.actor, data)
    assert preview.ok, [issues(r) for r in preview.rows]
    assert preview.rows[0].values["wecom_userid"] == "zhang.san"


def test_xlsx_numeric_id_cells_are_flagged_with_lost_zeros(session, manager):
    data = xlsx_bytes([["BJ01", 101, "", "a1", "甲"], ["BJ01", "000102", "", "a3", "丙"]])
    _, preview = run_preview(session, manager.actor, data, "b.xlsx")
    numeric, fine = preview.rows
    assert issues(numeric) == ["sheet.row.numeric_id"]
    assert "开头的 0" in error_text(DomainError(numeric.errors[0].key, **numeric.errors[0].params))
    assert fine.status == "new" and preview.error_count == 1


def test_formula_cells_are_rejected(session, manager):
    data = xlsx_bytes([["BJ01", '=TEXT(101,"000000")', "", "a1", "甲"]])
    _, preview = run_preview(session, manager.actor, data, "f.xlsx")
    assert issues(preview.rows[0]) == ["sheet.row.formula"]


def test_duplicates_name_every_row_involved(session, manager):
    data = csv_bytes([["BJ01", "000101", "", "a1", "甲"], ["BJ01", "000102", "", "A1", "乙"],
                      ["BJ01", "000101", "", "a3", "丙"]])
    _, preview = run_preview(session, manager.actor, data)
    first, second, third = preview.rows  # Excel rows 2, 3, 4 (the header is row 1)
    store_dup = {r.row_number: next(i.params["rows"] for i in r.errors if i.key.endswith("duplicate_store"))
                 for r in (first, third)}
    assert store_dup == {2: "4", 4: "2"}
    account_dup = {r.row_number: next(i.params["rows"] for i in r.errors if i.key.endswith("duplicate_account"))
                   for r in (first, second)}
    assert account_dup == {2: "3", 3: "2"}
    assert preview.error_count == 3


def test_cross_branch_rows(session, org, manager, operator):
    rows = [["SH01", "000201", "", "a1", "甲"],   # another branch's row
            ["BJ01", "000202", "", "a2", "乙"],   # a Shanghai store under Beijing
            ["XX99", "000101", "", "a3", "丙"]]   # unknown branch
    _, as_manager = run_preview(session, manager.actor, csv_bytes(rows))
    assert issues(as_manager.rows[0]) == ["binding_import.row.branch_not_allowed"]
    assert issues(as_manager.rows[1]) == ["binding_import.row.store_in_other_branch"]
    assert issues(as_manager.rows[2]) == ["binding_import.row.unknown_branch"]
    _, as_hq = run_preview(session, operator.actor, csv_bytes(rows), branch_id=org["north"].id)
    assert issues(as_hq.rows[0]) == ["binding_import.row.other_branch"]
    with pytest.raises(PermissionDenied):
        run_preview(session, manager.actor, csv_bytes(rows), branch_id=org["south"].id)


def test_row_checks_and_warnings(session, manager, operator):
    bind(session, operator.actor, "000202", "taken")
    data = csv_bytes([
        ["BJ01", "000103", "", "a1", "甲"],                    # closed store
        ["BJ01", "000999", "", "a2", "乙"],                    # unknown store
        ["BJ01", "101", "", "bad userid!", "丙"],              # invalid userid
        ["BJ01", "000102", "", "TAKEN", "丁"],                 # current for another store
        ["ＢＪ01", "\u3000０００１０１ ", "错的名字", " b1 ", "戊"],  # full-width, spaces, name mismatch
        ["BJ01", "", "", "b2", "己"],                          # missing store id
    ])
    _, preview = run_preview(session, manager.actor, data)
    closed, unknown, bad, taken, messy, missing = preview.rows
    assert issues(closed) == ["binding_import.row.store_closed"]
    assert issues(unknown) == ["binding_import.row.unknown_store"]
    assert issues(bad) == ["binding_import.row.bad_userid"]
    assert issues(taken) == ["binding_import.row.account_in_use"]
    assert taken.errors[0].params["store"] == "000202"
    assert issues(missing) == ["sheet.row.required"]
    assert messy.values["crm_store_id"] == "000101" and messy.values["wecom_userid"] == "b1"
    assert "binding_import.row.normalized" in issues(messy, "warnings")
    assert "binding_import.row.store_name_differs" in issues(messy, "warnings")
    # The messy row names store 000101 a second time (after normalising): both rows would say so.
    assert messy.status == "new"


def test_blank_rows_are_skipped(session, manager):
    data = csv_bytes([GOOD_ROWS[0], ["", "", "", "", ""], [" ", "", "\u3000", "", ""], GOOD_ROWS[1]])
    _, preview = run_preview(session, manager.actor, data)
    assert [r.row_number for r in preview.rows] == [2, 5]


def test_xlsx_cells_read_as_excel_shows_them(session, manager):
    import datetime as dt

    data = xlsx_bytes([["BJ01", "000101", dt.date(2026, 1, 2), "u.one", True],
                       [None, None, None, None, None],
                       ["BJ01", "000102", "店", "u.two", 12.5]])
    _, preview = run_preview(session, manager.actor, data, "cells.xlsx")
    first, second = preview.rows
    assert second.row_number == 4  # the empty row 3 keeps Excel's numbering
    assert first.values["store_name"].startswith("2026-01-02") and first.values["wecom_name"] == "TRUE"
    assert second.values["wecom_name"] == "12.5"


@pytest.mark.parametrize("data,filename,key", [
    (b"", "empty.csv", "sheet.empty_file"),
    (PNG, "photo.xlsx", "sheet.not_a_workbook"),
    (PNG, "photo.png", "sheet.unsupported_type"),
    (PNG, "photo.csv", "sheet.binary_file"),
    (OLE_ENCRYPTED, "secret.xlsx", "sheet.encrypted_or_xls"),
    (b"PK\x03\x04garbage", "broken.xlsx", "sheet.not_a_workbook"),
    (csv_bytes([], headers=["门店", "账号"]), "wrong.csv", "sheet.missing_columns"),
    (csv_bytes([]), "headers-only.csv", "sheet.no_rows"),
])
def test_files_that_are_not_sheets_get_a_clear_message(data, filename, key):
    with pytest.raises(SheetError) as caught:
        read.parse_sheet(data, filename)
    assert caught.value.key == key
    assert error_text(caught.value) != key  # there are words for it


def test_zip_bomb_is_refused():
    with pytest.raises(SheetError) as caught:
        read.parse_sheet(zip_bomb(), "bomb.xlsx")
    assert caught.value.key == "sheet.zip_bomb"


def test_missing_headers_name_the_columns():
    with pytest.raises(SheetError) as caught:
        read.parse_sheet(csv_bytes([["BJ01", "000101"]], headers=["分公司编码", "CRM门店ID"]), "b.csv")
    assert "企微账号" in error_text(caught.value)


def test_too_many_rows_and_too_large():
    rows = "\r\n".join(f"BJ01,{i:06d},,u{i},n" for i in range(100_001))
    data = ("分公司编码,CRM门店ID,门店名称,企微账号,企微账号名称\r\n" + rows).encode()
    with pytest.raises(SheetError) as caught:
        read.parse_sheet(data, "big.csv")
    assert caught.value.key == "sheet.too_many_rows"
    with pytest.raises(SheetError) as caught:
        read.parse_sheet(data + b"x" * (10 * 1024 * 1024), "huge.csv")
    assert caught.value.key == "sheet.too_large"


# --- template -------------------------------------------------------------------------------------------------

def test_template_keeps_leading_zeros_and_round_trips(session, manager):
    import io

    import openpyxl

    data = template.template_xlsx(branch_codes=["BJ01"], sheet_title="绑定表", help_title="填写说明",
                            codes_title="分公司编码列表", instructions=["说明"], example_caption="示例",
                            example=[["BJ01", "000123", "店", "u1", "客服"]],
                            validation_messages={k: "x" for k in ("title", "branch_code", "crm_store_id",
                                                                  "wecom_userid", "wecom_name")})
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book["绑定表"]
    assert [c.value for c in sheet[1]] == ["分公司编码", "CRM门店ID", "门店名称", "企微账号", "企微账号名称",
                                           "备用企微账号"]
    def column_format(index: int) -> str:
        return next(d.number_format for d in sheet.column_dimensions.values() if d.min <= index <= d.max)

    assert column_format(2) == "@" and column_format(4) == "@"  # CRM门店ID and 企微账号 are text
    assert len(sheet.data_validations.dataValidation) >= 3
    assert book.sheetnames == ["绑定表", "填写说明", "分公司编码列表"]
    # Fill it as a user would (text cells) and upload it.
    sheet.append(["BJ01", "000101", "北京朝阳大悦城店", "zhang.san", "张三"])
    buffer = io.BytesIO()
    book.save(buffer)
    _, preview = run_preview(session, manager.actor, buffer.getvalue(), "filled.xlsx")
    assert preview.ok and preview.rows[0].values["crm_store_id"] == "000101"
    assert template.template_csv().startswith("\ufeff分公司编码".encode("utf-8"))


# --- commit ---------------------------------------------------------------------------------------------------

def commit(session, actor, parsed, preview, **kw):
    result = sheet_commit.commit(session=session, actor=actor, preview=preview, **kw)
    session.commit()
    return result


def test_commit_creates_hidden_pending_bindings_and_replaces(session, org, manager, operator):
    old = bind(session, operator.actor, "000102", "old.account")
    data = csv_bytes([["BJ01", "000101", "", "zhang.san", "张三"],
                      ["BJ01", "000102", "", "new.account", "新号"]])
    parsed, preview = run_preview(session, manager.actor, data)
    assert (preview.new_count, preview.changed_count) == (1, 1)
    assert preview.rows[1].previous_userid == "old.account"
    result = commit(session, manager.actor, parsed, preview)
    assert (result.new_count, result.changed_count, result.accounts_created) == (1, 1, 2)

    fresh = current(session, "000101")
    assert fresh.shown is False and fresh.reviewed_at is None and fresh.created_by_id == manager.user.id
    session.refresh(old)
    assert old.end_reason == "replaced" and old.ended_at is not None and old.version == 2
    assert session.get(Account, old.account_id) is not None  # the old account stays listed
    created = session.exec(select(Account).where(Account.userid == "zhang.san")).one()
    assert created.status == AccountStatus.active and created.capacity_limit == 5000

    batch = session.get(BindingImport, result.import_id)
    assert batch.branch_id == org["north"].id and batch.uploaded_by_name == manager.user.username
    assert batch.sha256 == parsed.sha256 and (batch.new_count, batch.changed_count) == (1, 1)
    rows = session.exec(select(BindingImportRow).where(BindingImportRow.import_id == batch.id)).all()
    assert {(r.crm_store_id, r.outcome, r.previous_userid) for r in rows} == {
        ("000101", "new", None), ("000102", "changed", "old.account")}
    actions = [a.action for a in session.exec(select(AuditEntry)).all()]
    assert actions.count("binding.start") == 3 and actions.count("binding.end") == 1
    assert "bindings.import" in actions and actions.count("account.create") == 2
    logged = {(e.action, e.entity_id): e for e in session.exec(select(AuditEntry).where(
        col(AuditEntry.actor_user_id) == manager.user.id))}
    started = logged[("binding.start", str(fresh.id))]
    assert json.loads(started.after_json) == {"store": "000101", "account": "zhang.san", "shown": False,
                                              "current": True, "reviewed": False, "import": result.import_id}
    assert started.branch_id == org["north"].id and started.actor_name == manager.user.username
    ended = logged[("binding.end", str(old.id))]
    assert json.loads(ended.before_json) == {"store": "000102", "account": "old.account", "shown": False,
                                             "current": True}
    assert json.loads(ended.after_json)["end_reason"] == "replaced"
    assert json.loads(logged[("account.create", "zhang.san")].after_json) == {
        "userid": "zhang.san", "name": "张三", "capacity_limit": 5000, "status": "active",
        "import": result.import_id}


def test_same_file_twice_is_a_noop_with_notice(session, manager):
    data = csv_bytes(GOOD_ROWS)
    parsed, preview = run_preview(session, manager.actor, data)
    first = commit(session, manager.actor, parsed, preview)
    parsed, again = run_preview(session, manager.actor, data)
    assert again.already_imported.import_id == first.import_id and again.unchanged_count == 2
    assert again.repeats_earlier_import
    with pytest.raises(sheet_commit.AlreadyImported) as caught:
        sheet_commit.commit(session=session, actor=manager.actor, preview=again)
    assert f"#{first.import_id}" in error_text(caught.value)
    session.rollback()
    assert len(session.exec(select(BindingImport)).all()) == 1


def test_same_file_again_after_the_bindings_moved_is_committed(session, manager, operator):
    data = csv_bytes(GOOD_ROWS)
    parsed, preview = run_preview(session, manager.actor, data)
    first = commit(session, manager.actor, parsed, preview)
    # HQ unbinds one of the stores; uploading the same file again is how the branch restores it.
    bindings.end_binding(session=session, actor=operator.actor, binding=current(session, "000101"),
                         reason=bindings.BindingEndReason.unbound)
    session.commit()
    parsed, again = run_preview(session, manager.actor, data)
    assert again.already_imported.import_id == first.import_id and not again.repeats_earlier_import
    assert (again.new_count, again.unchanged_count) == (1, 1)
    second = commit(session, manager.actor, parsed, again)
    assert current(session, "000101") is not None
    batches = session.exec(select(BindingImport).order_by(BindingImport.id)).all()
    assert [b.id for b in batches] == [first.import_id, second.import_id]
    assert batches[0].sha256 == batches[1].sha256


def test_commit_refuses_errors_and_unconfirmed_warnings(session, manager):
    parsed, preview = run_preview(session, manager.actor, csv_bytes([["BJ01", "000103", "", "a1", "甲"]]))
    with pytest.raises(InvalidInput) as caught:
        sheet_commit.commit(session=session, actor=manager.actor, preview=preview)
    assert caught.value.key == "binding_import.has_errors"
    session.rollback()
    parsed, preview = run_preview(session, manager.actor, csv_bytes([["BJ01", "000101", "别名", "a1", "甲"]]))
    with pytest.raises(InvalidInput) as caught:
        sheet_commit.commit(session=session, actor=manager.actor, preview=preview)
    assert caught.value.key == "binding_import.confirm_warnings"
    session.rollback()
    assert session.exec(select(Binding)).all() == []
    commit(session, manager.actor, parsed, preview, confirm_warnings=True)
    assert current(session, "000101") is not None


def test_accounts_can_swap_between_stores_in_one_sheet(session, manager, operator):
    bind(session, operator.actor, "000101", "acc.a")
    bind(session, operator.actor, "000102", "acc.b")
    parsed, preview = run_preview(session, manager.actor, csv_bytes([["BJ01", "000101", "", "acc.b", "B"],
                                                                    ["BJ01", "000102", "", "acc.a", "A"]]))
    assert preview.ok and preview.changed_count == 2
    commit(session, manager.actor, parsed, preview)
    assert session.get(Account, current(session, "000101").account_id).userid == "acc.b"


def test_change_between_preview_and_commit_writes_nothing(engine, session, manager, operator):
    bind(session, operator.actor, "000102", "old.account")
    parsed, preview = run_preview(session, manager.actor, csv_bytes([["BJ01", "000101", "", "x1", "甲"],
                                                                    ["BJ01", "000102", "", "x2", "乙"]]))
    session.commit()
    with Session(engine) as other:  # HQ unbinds the store meanwhile
        binding = bindings.current_for_store(session=other, store_id=find_store(other, "000102").id)
        bindings.end_binding(session=other, actor=operator.actor, binding=binding,
                             reason=bindings.BindingEndReason.unbound)
        other.commit()
    with pytest.raises(ConcurrentEdit) as caught:
        sheet_commit.commit(session=session, actor=manager.actor, preview=preview)
    assert caught.value.key == "binding_import.changed_since_preview"
    session.rollback()
    assert session.exec(select(BindingImport)).all() == []
    assert session.exec(select(Account).where(col(Account.userid).in_(["x1", "x2"]))).all() == []
    assert current(session, "000101") is None


def hq_closes_or_moves_store(session, admin, crm_id: str, branch: str, status: str) -> None:
    """What HQ does through the store list import (the CRM export)."""
    from core.directory import stores

    names = {"BJ01": "北京分公司", "SH01": "上海分公司"}
    data = csv_bytes([[branch, names[branch], crm_id, find_store(session, crm_id).name, status]],
                     headers=["分公司编码", "分公司名称", "CRM门店ID", "门店名称", "状态"])
    result = stores.import_stores(session=session, actor=admin.actor, data=data, filename="crm.csv")
    assert result.ok, result.errors
    session.commit()


@pytest.mark.parametrize("change", ["store_closed", "store_moved", "account_disabled"])
def test_hq_change_between_preview_and_commit_asks_to_preview_again(engine, session, org, manager, make_user,
                                                                    change):
    """None of these touches a binding: only the comparison with what the preview saw can catch them."""
    admin = make_user(Role.hq_admin)
    make_account(session, "kept.account", name="留用")
    parsed, preview = run_preview(session, manager.actor, csv_bytes([["BJ01", "000101", "", "kept.account", "甲"],
                                                                    ["BJ01", "000102", "", "x2", "乙"]]))
    assert preview.ok and preview.warning_count == 0
    session.commit()
    with Session(engine, expire_on_commit=False) as hq:
        if change == "store_closed":
            hq_closes_or_moves_store(hq, admin, "000101", "BJ01", "closed")
        elif change == "store_moved":
            hq_closes_or_moves_store(hq, admin, "000101", "SH01", "open")
        else:
            from core.directory import accounts

            account = hq.exec(select(Account).where(Account.userid == "kept.account")).one()
            accounts.set_status(session=hq, actor=admin.actor, account=account, status=AccountStatus.disabled)
            hq.commit()
    with pytest.raises(ConcurrentEdit) as caught:
        sheet_commit.commit(session=session, actor=manager.actor, preview=preview)
    assert caught.value.key == "binding_import.changed_since_preview"
    session.rollback()
    assert session.exec(select(BindingImport)).all() == []
    assert session.exec(select(Binding)).all() == []
    assert session.exec(select(Account).where(Account.userid == "x2")).all() == []
    # Previewing again shows why.
    fresh = judge.preview(session=session, actor=manager.actor, parsed=parsed)
    expected = {"store_closed": ("errors", "binding_import.row.store_closed"),
                "store_moved": ("errors", "binding_import.row.store_in_other_branch"),
                "account_disabled": ("warnings", "binding_import.row.account_disabled")}[change]
    assert issues(fresh.rows[0], expected[0]) == [expected[1]]


def test_hq_import_from_the_command_line_shows_in_each_branchs_history(session, org, make_user, manager):
    """An HQ file without a chosen branch: each branch's managers see the batch, with their own rows and figures."""
    operator = make_user(Role.hq_operator)
    south_manager = make_user(Role.branch_manager, org["south"])
    parsed, preview = run_preview(session, operator.actor, csv_bytes([
        ["BJ01", "000101", "", "n1", "北一"], ["BJ01", "000102", "", "n2", "北二"],
        ["SH01", "000201", "", "s1", "南一"]]))
    assert preview.branch_id is None and preview.ok
    result = commit(session, operator.actor, parsed, preview)
    assert session.get(BindingImport, result.import_id).branch_id is None  # several branches
    for user, crm_ids in ((manager, ["000101", "000102"]), (south_manager, ["000201"])):
        mine, total = history.list_imports(session=session, actor=user.actor)
        assert total == 1 and mine[0].import_id == result.import_id
        assert (mine[0].total_rows, mine[0].new_count, mine[0].accounts_created) == (len(crm_ids),) * 3
        assert mine[0].branch_code == session.get(Branch, user.user.branch_id).code
        rows, total = history.import_rows(session=session, actor=user.actor, import_id=result.import_id)
        assert [r.crm_store_id for r in rows] == crm_ids and total == len(crm_ids)
    everything, _ = history.list_imports(session=session, actor=operator.actor)
    assert everything[0].total_rows == 3 and everything[0].branch_code is None
    # A file with one branch's rows is recorded as that branch's.
    parsed, preview = run_preview(session, operator.actor, csv_bytes([["SH01", "000202", "", "s2", "南二"]]))
    single = commit(session, operator.actor, parsed, preview)
    assert session.get(BindingImport, single.import_id).branch_id == org["south"].id


def test_history_is_branch_scoped(session, org, make_user, manager, operator):
    parsed, preview = run_preview(session, manager.actor, csv_bytes(GOOD_ROWS))
    north = commit(session, manager.actor, parsed, preview)
    parsed, preview = run_preview(session, operator.actor, csv_bytes([["SH01", "000201", "", "s1", "上"]]),
                                  branch_id=org["south"].id)
    south = commit(session, operator.actor, parsed, preview)
    mine, total = history.list_imports(session=session, actor=manager.actor)
    assert total == 1 and mine[0].import_id == north.import_id and mine[0].branch_code == "BJ01"
    everything, total = history.list_imports(session=session, actor=operator.actor)
    assert total == 2 and everything[0].import_id == south.import_id
    rows, total = history.import_rows(session=session, actor=manager.actor, import_id=north.import_id)
    assert [r.crm_store_id for r in rows] == ["000101", "101"]
    with pytest.raises(PermissionDenied):
        history.import_rows(session=session, actor=manager.actor, import_id=south.import_id)
    viewer = make_user(Role.viewer)
    with pytest.raises(PermissionDenied):
        history.list_imports(session=session, actor=viewer.actor)


def test_warnings_are_kept_with_the_rows(session, manager):
    parsed, preview = run_preview(session, manager.actor, csv_bytes([["BJ01", "000101", "别名", "a1", "甲"]]))
    result = commit(session, manager.actor, parsed, preview, confirm_warnings=True)
    rows, _ = history.import_rows(session=session, actor=manager.actor, import_id=result.import_id)
    assert [w.key for w in rows[0].warnings] == ["binding_import.row.store_name_differs"]
    stored = session.exec(select(BindingImportRow)).one()
    assert json.loads(stored.warnings_json)[0]["params"]["known"] == "北京朝阳大悦城店"

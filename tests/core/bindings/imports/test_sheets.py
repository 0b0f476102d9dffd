"""Binding sheets as files: size limits in xlsx, crafted workbooks, messy
real-world layouts, how IDs are cleaned and flagged, the template and the
error report."""

import io
import tracemalloc

import openpyxl
import pytest

from base.errors import DomainError
from core.bindings.imports import judge, read
from core.bindings.imports import template as sheet_template
from core.sheets import MAX_ROWS, SheetError
from i18n import error_text, t
from tests.support.binding_sheets import HEADERS, csv_bytes, inline_row, workbook_bytes, xlsx_bytes, xlsx_with_rows_xml


def run_preview(session, actor, data, filename="bindings.csv", branch_id=None):
    parsed = read.parse_sheet(data, filename)
    return parsed, judge.preview(session=session, actor=actor, parsed=parsed, branch_id=branch_id)


def issues(row: judge.PreviewRow, kind: str = "errors") -> list[str]:
    return [i.key for i in getattr(row, kind)]


def text_of(issue: judge.RowIssue) -> str:
    return error_text(DomainError(issue.key, **issue.params))


@pytest.fixture
def manager(org, make_user):
    from db.models import Role

    return make_user(Role.branch_manager, org["north"])


# --- row limits in xlsx ---------------------------------------------------------------------------------------

def big_xlsx(data_rows: int, blank_every: int = 0) -> bytes:
    """`data_rows` rows under the header; with `blank_every`, an empty row after
    every so many rows (an explicit empty <row>, then a gap of one row number)."""
    parts, number = [inline_row(1, HEADERS)], 1
    for i in range(data_rows):
        number += 1
        parts.append(f'<row r="{number}"><c r="A{number}" t="inlineStr"><is><t>BJ01</t></is></c>'
                     f'<c r="B{number}"><v>{i}</v></c><c r="D{number}" t="inlineStr"><is><t>u{i}</t></is></c>'
                     f'<c r="E{number}" t="inlineStr"><is><t>n</t></is></c></row>')
        if blank_every and i % blank_every == 0:
            parts.append(f'<row r="{number + 1}"><c r="A{number + 1}"/></row>')
            number += 2
    return xlsx_with_rows_xml("".join(parts))


def test_xlsx_one_row_over_the_limit_is_refused():
    with pytest.raises(SheetError) as caught:
        read.parse_sheet(big_xlsx(MAX_ROWS + 1), "big.xlsx")
    assert caught.value.key == "sheet.too_many_rows"
    assert "100000" in error_text(caught.value)


def test_xlsx_at_the_limit_with_blank_rows_reads_every_row():
    parsed = read.parse_sheet(big_xlsx(MAX_ROWS, blank_every=1000), "full.xlsx")
    assert len(parsed.rows) == MAX_ROWS
    # 100 blank rows and 100 skipped row numbers lie between: the last row keeps its Excel number.
    assert parsed.rows[-1].row_number == 1 + MAX_ROWS + 2 * 100
    assert parsed.rows[-1].values["wecom_userid"] == f"u{MAX_ROWS - 1}"


# --- crafted workbooks ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("rows_xml", [
    inline_row(1, HEADERS) + inline_row(3_000_000, ["BJ01", "000101", "", "a1", "甲"]),
    inline_row(1, HEADERS) + '<row r="2"><c r="ZZZZZ2" t="inlineStr"><is><t>x</t></is></c></row>',
    inline_row(1, HEADERS) + '<row r="2"><c r="XFE2" t="inlineStr"><is><t>x</t></is></c></row>',
    inline_row(1, HEADERS) + '<row r="0"><c t="inlineStr"><is><t>x</t></is></c></row>',
], ids=["row-beyond-excel", "column-ZZZZZ", "column-beyond-XFD", "row-zero"])
def test_rows_and_columns_beyond_excel_are_refused(rows_xml):
    data = xlsx_with_rows_xml(rows_xml)
    assert len(data) < 10_000
    tracemalloc.start()
    try:
        with pytest.raises(SheetError) as caught:
            read.parse_sheet(data, "crafted.xlsx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.key == "sheet.not_a_workbook"
    assert peak < 10 * 1024 * 1024  # refused before anything is sized by the crafted number


def test_far_rows_and_columns_cost_no_memory():
    """Excel's last row and last column are legal; nothing is kept for the gap."""
    data = xlsx_with_rows_xml(
        inline_row(1, HEADERS)
        + inline_row(2, ["BJ01", "000101", "", "a1", "甲"])
        + '<row r="3"><c r="XFD3" t="inlineStr"><is><t>far right</t></is></c></row>'
        + inline_row(1_048_576, ["BJ01", "000102", "", "a2", "乙"]))
    tracemalloc.start()
    try:
        parsed = read.parse_sheet(data, "far.xlsx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r.row_number for r in parsed.rows] == [2, 1_048_576]
    assert peak < 10 * 1024 * 1024


# --- messy layouts --------------------------------------------------------------------------------------------

def test_title_rows_above_the_header_keep_excel_row_numbers(session, manager):
    data = xlsx_bytes([["BJ01", "000101", "", "a1", "甲"], ["BJ01", "000103", "", "a2", "乙"]],
                      above=[["北京分公司门店企微绑定表"], [], ["填表人：张三", None, "日期：11月"]])
    parsed, preview = run_preview(session, manager.actor, data, "titled.xlsx")
    assert parsed.header_row == 4
    assert [r.row_number for r in preview.rows] == [5, 6]
    assert issues(preview.rows[1]) == ["binding_import.row.store_closed"]


def test_csv_with_a_title_line():
    data = csv_bytes([["BJ01", "000101", "", "a1", "甲"]], above=["北京分公司门店企微绑定表", ""], encoding="gbk")
    parsed = read.parse_sheet(data, "titled.csv")
    assert parsed.header_row == 3 and parsed.rows[0].row_number == 4
    assert parsed.rows[0].values["crm_store_id"] == "000101"


def test_the_table_may_be_on_a_later_worksheet():
    data = workbook_bytes([("汇总", [["本月共 1 家门店"], ["见下一页"]]),
                           ("北京", [["北京分公司"], HEADERS, ["BJ01", "000101", "", "a1", "甲"]])])
    parsed = read.parse_sheet(data, "book.xlsx")
    assert parsed.sheet_name == "北京" and parsed.rows[0].row_number == 3


def test_the_templates_instructions_sheet_is_never_read():
    """Its example rows sit under a full header row; even moved first, they are not data."""
    book = openpyxl.load_workbook(io.BytesIO(template(["BJ01"])))
    book.move_sheet(t("binding_import.template.help_sheet"), offset=-1)
    book[t("binding_import.template.sheet")].append(["BJ01", "000101", "", "a1", "甲"])
    buffer = io.BytesIO()
    book.save(buffer)
    parsed = read.parse_sheet(buffer.getvalue(), "filled.xlsx")
    assert parsed.sheet_name == t("binding_import.template.sheet")
    assert [r.values["crm_store_id"] for r in parsed.rows] == ["000101"]


def test_a_header_below_the_first_rows_is_not_looked_for():
    data = xlsx_bytes([["BJ01", "000101", "", "a1", "甲"]], above=[[f"说明 {i}"] for i in range(10)])
    with pytest.raises(SheetError) as caught:
        read.parse_sheet(data, "deep.xlsx")
    assert caught.value.key == "sheet.missing_columns"


def test_a_row_with_only_an_extra_column_filled_is_blank(session, manager):
    data = csv_bytes([["BJ01", "000101", "", "a1", "甲", ""], ["", "", "", "", "", "以下为新增门店"],
                      ["BJ01", "101", "", "a2", "乙", "新店"]], headers=[*HEADERS, "备注"])
    _, preview = run_preview(session, manager.actor, data)
    assert [r.row_number for r in preview.rows] == [2, 4]
    assert preview.ok


# --- IDs: invisible characters and numbers --------------------------------------------------------------------

def test_zero_width_characters_are_removed_with_a_warning(session, manager):
    data = csv_bytes([["BJ01", "000\u200b101", "", "\ufeffzhang.san\u200d", "张三"]])
    _, preview = run_preview(session, manager.actor, data)
    row = preview.rows[0]
    assert row.values["crm_store_id"] == "000101" and row.values["wecom_userid"] == "zhang.san"
    assert row.status == "new" and issues(row) == []
    assert issues(row, "warnings") == ["binding_import.row.normalized"] * 2


def test_text_ids_that_look_like_numbers_are_left_alone(session, manager):
    """Typed as text (a CSV value, or a text cell in xlsx), 12E34 and 2023.01 are IDs like any other."""
    csv_data = csv_bytes([["BJ01", "000101", "", "12E34", "甲"], ["BJ01", "101", "", "2023.01", "乙"]])
    _, preview = run_preview(session, manager.actor, csv_data)
    assert preview.ok and preview.warning_count == 0
    xlsx_data = xlsx_bytes([["BJ01", "000101", "", "1.5E-03", "甲"], ["BJ01", "000102", "", "2023.0", "乙"]])
    _, preview = run_preview(session, manager.actor, xlsx_data, "text.xlsx")
    assert preview.ok and preview.warning_count == 0


def test_csv_values_in_excels_number_rendering_are_flagged(session, manager):
    data = csv_bytes([["BJ01", "101.0", "", "a1", "甲"],       # a store ID exported as a float
                      ["BJ01", "1.01E+05", "", "a2", "乙"],    # scientific notation: digits are gone
                      ["BJ01", "000101", "", "2023.0", "丙"]])  # a userid may really be 2023.0
    _, preview = run_preview(session, manager.actor, data)
    decimal, exponent, userid = preview.rows
    assert "binding_import.row.numeric_decimal_text" in issues(decimal)
    assert "binding_import.row.numeric_exponent_text" in issues(exponent)
    assert "科学计数法" in text_of(exponent.errors[0])
    assert issues(userid) == [] and issues(userid, "warnings") == ["binding_import.row.numeric_decimal_userid"]


def test_number_cells_are_explained_by_what_can_have_been_lost(session, manager):
    data = xlsx_bytes([["BJ01", 101, "", "a1", "甲"],              # store ID: leading zeros
                       ["BJ01", "000101", "", 13800138000, "乙"],  # userid: read as typed, checked
                       ["BJ01", "000102", "", 12.5, "丙"]])        # a fraction: the digits may differ
    _, preview = run_preview(session, manager.actor, data, "numbers.xlsx")
    store_id, userid, fraction = preview.rows
    assert issues(store_id) == ["sheet.row.numeric_id"] and "开头的 0" in text_of(store_id.errors[0])
    assert issues(userid) == [] and issues(userid, "warnings") == ["binding_import.row.numeric_userid"]
    assert userid.values["wecom_userid"] == "13800138000" and userid.status == "new"
    assert "13800138000" in text_of(userid.warnings[0]) and "开头" not in text_of(userid.warnings[0])
    assert issues(fraction) == ["binding_import.row.numeric_inexact"]


# --- template -------------------------------------------------------------------------------------------------

def template(codes: list[str]) -> bytes:
    return sheet_template.template_xlsx(branch_codes=codes, sheet_title=t("binding_import.template.sheet"),
                            help_title=t("binding_import.template.help_sheet"),
                            codes_title=t("binding_import.template.codes_sheet"),
                            instructions=t("binding_import.template.help").split("\n"),
                            example_caption=t("binding_import.template.example"),
                            example=[["BJ01", "000123", "店", "u1", "客服"]],
                            validation_messages={k: "x" for k in ("title", "branch_code", "crm_store_id",
                                                                  "wecom_userid", "wecom_name")})


def test_template_with_sixty_branches_keeps_the_branch_code_list():
    codes = [f"BR{i:03d}" for i in range(60)]
    book = openpyxl.load_workbook(io.BytesIO(template(codes)))
    sheet = book[t("binding_import.template.sheet")]
    lists = [v for v in sheet.data_validations.dataValidation if v.type == "list"]
    assert len(lists) == 1 and "A2" in lists[0].sqref
    codes_sheet = book[t("binding_import.template.codes_sheet")]
    assert codes_sheet.sheet_state == "hidden"
    assert lists[0].formula1 == f"'{codes_sheet.title}'!$A$1:$A$60"
    assert [c.value for c in codes_sheet["A"]] == codes


# --- error report ---------------------------------------------------------------------------------------------

def report_rows(preview: judge.Preview) -> list[list]:
    sheet = openpyxl.load_workbook(io.BytesIO(sheet_template.error_report_xlsx(preview))).active
    return [[c.value for c in row] for row in sheet.iter_rows()]


def test_error_report_has_the_uploaded_rows_with_status_and_reason(session, manager):
    data = csv_bytes([["BJ01", "000101", "", "ok.user", "甲", "备注一"], ["SH01", "000201", "", "x", "乙", ""],
                      ["BJ01", "000102", "别名", "y", "丙", "备注三"]], headers=[*HEADERS, "备注"])
    _, preview = run_preview(session, manager.actor, data)
    header, *rows = report_rows(preview)
    assert header == [t("binding_import.col.row"), *HEADERS, "备注", t("binding_import.col.status"),
                      t("binding_import.col.reason")]
    assert [r[0] for r in rows] == [2, 3, 4]
    assert rows[0][2] == "000101" and rows[0][6] == "备注一"
    assert rows[0][7] == t("binding_import.status.new") and not rows[0][8]
    assert rows[1][7] == t("binding_import.status.error") and "SH01" in rows[1][8]
    assert rows[2][7] == t("binding_import.status.new") and "别名" in rows[2][8]


def test_error_report_keeps_the_files_own_status_and_row_columns(session, manager):
    data = csv_bytes([["7", "待处理", "BJ01", "000101", "", "a1", "甲"]], headers=["行号", "状态", *HEADERS])
    _, preview = run_preview(session, manager.actor, data)
    header, row = report_rows(preview)
    ours = t("binding_import.report.ours")
    assert header == [t("binding_import.col.row") + ours, "行号", "状态", *HEADERS,
                      t("binding_import.col.status") + ours, t("binding_import.col.reason")]
    assert row[:3] == [2, "7", "待处理"] and row[-2] == t("binding_import.status.new")

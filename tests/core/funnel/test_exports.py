"""Exports at the core: every cell a spreadsheet would run as a formula
(= + - @, a leading tab or carriage return) is neutralised in xlsx and CSV,
also in the filter header; numbers stay numbers; file names carry the filters."""

import csv
import io

import openpyxl
import pandas as pd
import pytest

from core.exports import file_name, neutralise, sheet_name, to_csv_bytes, to_xlsx_bytes

DANGEROUS = ["=HYPERLINK(\"http://x\")", "+86 138", "-1+2", "@SUM(A1:A2)", "\tcmd", "\rcmd"]
# What the files are checked with (xlsx stores a carriage return as _x000D_).
IN_FILES = DANGEROUS[:5]


@pytest.mark.parametrize("value", DANGEROUS)
def test_each_formula_start_is_neutralised(value):
    assert neutralise(value) == "'" + value


def test_harmless_values_are_left_alone():
    assert [neutralise(v) for v in ["北京分公司", "000101", "a=b", -3, 2.5, None]] == \
        ["北京分公司", "000101", "a=b", -3, 2.5, None]


def frame() -> pd.DataFrame:
    return pd.DataFrame({"门店名称": IN_FILES, "CRM门店ID": ["000101"] * len(IN_FILES),
                         "用户数": list(range(-3, len(IN_FILES) - 3))})


HEADER = [("分公司", "=BJ01"), ("门店", "+000101"), ("平台", "@app"), ("日期范围", "-1")]


def test_csv_cells_and_header_are_neutralised():
    text = to_csv_bytes(frame(), header=HEADER).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[:4] == [[label, "'" + value] for label, value in HEADER]
    assert rows[4] == []
    assert rows[5] == ["门店名称", "CRM门店ID", "用户数"]
    assert [r[0] for r in rows[6:]] == ["'" + v for v in IN_FILES]
    assert [r[1] for r in rows[6:]] == ["000101"] * len(IN_FILES)
    assert [r[2] for r in rows[6:]] == [str(n) for n in range(-3, len(IN_FILES) - 3)]


def test_xlsx_cells_are_text_not_formulas_and_the_filters_have_their_sheet():
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx_bytes(frame(), "各分公司", header=HEADER,
                                                           header_sheet="筛选条件")))
    assert book.sheetnames == ["各分公司", "筛选条件"]
    cells = list(book["各分公司"].iter_rows(min_row=2))
    assert [c[0].value for c in cells] == ["'" + v for v in IN_FILES]
    assert all(c[0].data_type == "s" for c in cells)
    assert [c[1].value for c in cells] == ["000101"] * len(IN_FILES)
    assert [c[2].value for c in cells] == list(range(-3, len(IN_FILES) - 3))
    assert list(book["筛选条件"].iter_rows(values_only=True)) == [(label, "'" + value) for label, value in HEADER]


def test_a_plain_export_keeps_its_old_shape():
    assert to_csv_bytes(pd.DataFrame({"a": ["x"]})) == "a\nx\n".encode("utf-8-sig")
    assert openpyxl.load_workbook(io.BytesIO(to_xlsx_bytes(pd.DataFrame({"a": ["x"]})))).sheetnames == ["Sheet1"]


def test_file_names_carry_the_page_and_filters_in_chinese_and_safe_characters():
    assert file_name("导流效果", "门店明细", "2026-11-01至2026-11-30", "BJ01 北京分公司", "全部门店", "小程序") == \
        "导流效果_门店明细_2026-11-01至2026-11-30_BJ01-北京分公司_全部门店_小程序"
    # What Windows or macOS refuse in a name, and empty parts, are left out.
    assert file_name("绑定审核", 'a/b\\c:d*e?"f<g>h|i', "", " .") == "绑定审核_a-b-c-d-e-f-g-h-i"
    assert len(file_name("门店", "长" * 400)) == 150
    assert sheet_name("导流效果[各分公司]/2026:11") == "导流效果-各分公司-2026-11"


def test_xlsx_text_columns_are_formatted_as_text_so_excel_keeps_leading_zeros():
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx_bytes(frame())))
    sheet = book.active
    ids = [row[1] for row in sheet.iter_rows(min_row=2)]
    assert all(cell.value == "000101" and cell.number_format == "@" for cell in ids)
    assert all(row[2].number_format != "@" for row in sheet.iter_rows(min_row=2))

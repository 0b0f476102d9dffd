"""Crafted sheets: what reading one may cost is bounded by construction (every
XML element let go once read, each part's inflated size capped, the
compression ratio judged per sheet part), and a CSV cell past the csv module's
limit is named as what it is."""

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from core.sheets import SheetColumn, SheetError, read_sheet
from core.sheets.xlsx import MAX_OTHER_PART_BYTES
from i18n import error_text
from tests.support.binding_sheets import inline_row, workbook_bytes

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = [SheetColumn("code", ("编码",)), SheetColumn("name", ("名称",))]
TABLE = inline_row(1, ["编码", "名称"]) + inline_row(2, ["A1", "甲"])


def crafted(sheet_data: str = TABLE, after_sheet_data: str = "", parts: dict[str, bytes] | None = None,
            stored: dict[str, bytes] | None = None) -> bytes:
    """A real workbook whose first worksheet holds `sheet_data` and then
    `after_sheet_data`, with `parts` replacing or adding deflated members and
    `stored` adding members kept uncompressed."""
    source = zipfile.ZipFile(io.BytesIO(workbook_bytes([("Sheet", [["x"]])])))
    body = f"<sheetData>{sheet_data}</sheetData>{after_sheet_data}".encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            data = (parts or {}).get(info.filename) or source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb"<sheetData>.*</sheetData>|<sheetData/>", body.replace(b"\\", b"\\\\"), data,
                              flags=re.S)
            archive.writestr(info.filename, data)
        for name, data in (parts or {}).items():
            if name not in source.namelist():
                archive.writestr(name, data)
        for name, data in (stored or {}).items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def junk(count: int) -> str:
    """Elements no spreadsheet program writes, compressing about as well as a real sheet does."""
    return "".join(f"<x a='{i % 97}'/>" if i % 8 == 0 else "<x/>" for i in range(count))


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec.
READ_IN_A_CHILD = """
import json, re, sys
from core.sheets import SheetColumn, SheetError, read_sheet

def peak_kb():
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1))

data = open(sys.argv[1], "rb").read()
before = peak_kb()
try:
    columns = [SheetColumn("code", ("编码",)), SheetColumn("name", ("名称",))]
    outcome = len(read_sheet(data, "crafted.xlsx", columns).rows)
except SheetError as exc:
    outcome = exc.key
print(json.dumps({"outcome": outcome, "growth_kb": peak_kb() - before}))
"""


def read_in_a_child(data: bytes, tmp_path: Path) -> dict:
    """Read the file in a fresh process: its outcome and how far the peak RSS grew while reading."""
    path = tmp_path / "crafted.xlsx"
    path.write_bytes(data)
    done = subprocess.run([sys.executable, "-c", READ_IN_A_CHILD, str(path)], cwd=ROOT, capture_output=True,
                          text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(done.stdout)


@pytest.mark.parametrize("where", ["in-sheet-data", "after-sheet-data"])
def test_millions_of_elements_beside_the_rows_cost_no_memory(tmp_path, where):
    """1.5 million elements that are no rows (12 MB of XML in a 0.5 MB file)
    held about 100 MB while every row was read; memory now stays flat."""
    elements = junk(1_500_000)
    data = crafted(TABLE + elements) if where == "in-sheet-data" else crafted(after_sheet_data=elements)
    assert len(data) < 1024 * 1024
    read = read_in_a_child(data, tmp_path)
    assert read["outcome"] == 1
    assert read["growth_kb"] < 30 * 1024


def test_a_cell_of_endless_elements_is_refused_before_it_costs_memory(tmp_path):
    cell = f"<row r='3'><c r='A3' t='inlineStr'><is><t>a</t>{junk(1_500_000)}</is></c></row>"
    read = read_in_a_child(crafted(TABLE + cell), tmp_path)
    assert read["outcome"] == "sheet.not_a_workbook"
    assert read["growth_kb"] < 30 * 1024


def test_a_random_stored_member_does_not_hide_a_sheet_bomb():
    """Judged over the whole file, the random member brought the ratio under the limit."""
    data = crafted(after_sheet_data="<x/>" * 8_000_000, stored={"docProps/thumbnail.bin": os.urandom(400_000)})
    with pytest.raises(SheetError) as caught:
        read_sheet(data, "bomb.xlsx", COLUMNS)
    assert caught.value.key == "sheet.zip_bomb"


def test_a_part_read_whole_is_capped():
    """openpyxl builds a whole tree of styles.xml: a large one is refused unread."""
    styles = ("<styleSheet xmlns='http://schemas.openxmlformats.org/spreadsheetml/2006/main'>"
              + junk(MAX_OTHER_PART_BYTES // 4) + "</styleSheet>").encode()
    assert len(styles) > MAX_OTHER_PART_BYTES
    with pytest.raises(SheetError) as caught:
        read_sheet(crafted(parts={"xl/styles.xml": styles}), "styles.xlsx", COLUMNS)
    assert caught.value.key == "sheet.part_too_large"
    assert "xl/styles.xml" in error_text(caught.value)


def test_a_real_workbook_still_reads():
    data = crafted(TABLE + inline_row(3, ["A2", "乙"]))
    sheet = read_sheet(data, "ok.xlsx", COLUMNS)
    assert [(r.row_number, r.values) for r in sheet.rows] == [
        (2, {"code": "A1", "name": "甲"}), (3, {"code": "A2", "name": "乙"})]


def test_a_csv_cell_past_the_limit_names_its_row_not_a_binary_file():
    """An unclosed quote makes the rest of the file one cell."""
    lines = ["编码,名称", "A1,甲", 'A2,"乙'] + [f"A{i},门店{i}" for i in range(3, 20_000)]
    with pytest.raises(SheetError) as caught:
        read_sheet("\n".join(lines).encode(), "quote.csv", COLUMNS)
    assert caught.value.key == "sheet.cell_too_long"
    assert caught.value.params["row"] == 3
    assert "第 3 行" in error_text(caught.value)


def test_a_csv_with_nul_bytes_is_still_a_binary_file():
    data = "编码,名称\nA1,甲\n".encode() + b"A2,\x00" + b"x" * 5000
    with pytest.raises(SheetError) as caught:
        read_sheet(data, "nul.csv", COLUMNS)
    assert caught.value.key == "sheet.binary_file"

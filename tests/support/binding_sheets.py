"""A corpus of binding sheets, built the way Excel and people make them."""

import io
import re
import zipfile

import openpyxl

HEADERS = ["分公司编码", "CRM门店ID", "门店名称", "企微账号", "企微账号名称"]


def csv_bytes(rows: list[list[str]], headers: list[str] = HEADERS, encoding: str = "utf-8-sig",
              above: list[str] = ()) -> bytes:
    """`above`: lines before the header row (a title, a note)."""
    lines = [*above, ",".join(headers)] + [",".join(r) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_bytes(rows: list[list[object]], headers: list[str] = HEADERS, above: list[list[object]] = ()) -> bytes:
    """Cells keep their Python type: an int becomes a number cell, a str
    starting with "=" a formula, as typed into Excel. `above`: rows before the
    header row (a title, a blank row)."""
    return workbook_bytes([("Sheet", [*above, headers, *rows])])


def workbook_bytes(sheets: list[tuple[str, list[list[object]]]]) -> bytes:
    """A workbook with these worksheets, in this order."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def inline_row(number: int, values: list[str], first_column: int = 0) -> str:
    """A <row> of inline-string cells, as some tools write them."""
    cells = "".join(f'<c r="{_letters(first_column + i)}{number}" t="inlineStr"><is><t>{v}</t></is></c>'
                    for i, v in enumerate(values) if v)
    return f'<row r="{number}">{cells}</row>'


def _letters(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def xlsx_with_rows_xml(rows_xml: str) -> bytes:
    """A real workbook whose first worksheet's <sheetData> is `rows_xml`: for
    files no spreadsheet program writes (crafted row numbers, huge sheets)."""
    template = workbook_bytes([("Sheet", [["x"]])])
    source = zipfile.ZipFile(io.BytesIO(template))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb"<sheetData>.*</sheetData>|<sheetData/>",
                              lambda _: f"<sheetData>{rows_xml}</sheetData>".encode(), data, flags=re.S)
                data = re.sub(rb"<dimension[^>]*/>", b"", data)
            archive.writestr(info.filename, data)
    return buffer.getvalue()


def zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (50 * 1024 * 1024))
    return buffer.getvalue()


PNG = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + bytes(range(256)) * 4
OLE_ENCRYPTED = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 2048

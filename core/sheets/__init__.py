"""Reading the sheets people upload: .xlsx, or .csv in UTF-8, UTF-8 with BOM,
GB18030/GBK or UTF-16 (what Excel on Chinese Windows saves).

Every value comes back as text. The header row may sit below a title row (it
is looked for in the first rows of each worksheet), and rows keep the numbers
Excel shows. When Excel has already turned an ID into a number (a number cell,
or a CSV value such as ``123.0`` or ``1.23E+05``), the row carries a note so the
caller can explain what may have been lost. File problems raise `SheetError`;
row problems are the caller's to judge.
"""

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass

from core.sheets.raw import RawRow, RawRows, SheetError
from core.sheets.xlsx import open_workbook, worksheet_rows

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 100_000
# The csv module's field limit: a CSV cell (a quoted one may span lines) longer than this is refused.
MAX_CSV_CELL_CHARS = csv.field_size_limit()
# A title or a note may sit above the header row.
HEADER_SEARCH_ROWS = 10

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# What Excel (or a tool that read the column as numbers) writes into a CSV for
# a number: the ID as it was typed cannot be told from these any more.
_FLOAT_RENDERING = re.compile(r"\d+\.0+")
_EXPONENT_RENDERING = re.compile(r"[+-]?\d+(\.\d+)?[eE][+-]\d+")
# Invisible characters that come along when IDs are copied from chat or web pages.
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_EDGE_CHARS = "\u3000\ufeff\u200b\u200c\u200d\u2060"


@dataclass(frozen=True)
class SheetColumn:
    key: str
    headers: tuple[str, ...]
    required: bool = True
    is_id: bool = False

    @property
    def label(self) -> str:
        return self.headers[0]


@dataclass(frozen=True)
class CellNote:
    field: str
    kind: str  # numeric_id | formula | normalized
    original: str
    # For numeric_id, what Excel did: number_cell (an integer: only leading zeros
    # can be gone), inexact_number_cell (a fraction or more than 15 digits: the
    # digits themselves may have changed), decimal_text (123.0) or exponent_text (1.23E+05).
    detail: str = ""


class SheetRow:
    """One data row: the mapped columns' cleaned values, notes on how they were
    read, and every column of the file (`raw`, built when an error report asks)."""

    __slots__ = ("row_number", "values", "notes", "_cells", "_columns")

    def __init__(self, row_number: int, values: dict[str, str], notes: list[CellNote] | None = None,
                 cells: dict[int, str] | None = None, columns: list[tuple[str, int]] | None = None) -> None:
        self.row_number = row_number  # as Excel shows it
        self.values = values
        self.notes = notes if notes is not None else []
        self._cells = cells or {}
        self._columns = columns or []

    @property
    def raw(self) -> dict[str, str]:
        cells = self._cells
        return {name: cells.get(position, "") for name, position in self._columns}



@dataclass
class Sheet:
    rows: list[SheetRow]
    header_row: int
    headers: list[str]  # the file's columns, names made unique, as the error report shows them
    file_kind: str  # xlsx | csv
    encoding: str | None = None
    sheet_name: str | None = None  # the worksheet the rows came from (xlsx)


def _header_key(text: str) -> str:
    return re.sub(r"[\s_]+", "", unicodedata.normalize("NFKC", text.translate(_ZERO_WIDTH))).lower()


def normalise_text(value: str) -> str:
    """Strip surrounding (also full-width and zero-width) spaces."""
    return value.strip().strip(_EDGE_CHARS).strip()


def normalise_id(value: str) -> str:
    """Full-width digits and letters (０１２３, ＡＢ) to ASCII, invisible
    characters removed wherever they are, spaces stripped."""
    return unicodedata.normalize("NFKC", value.translate(_ZERO_WIDTH)).strip()


def _check_size(data: bytes) -> None:
    if not data or not data.strip():
        raise SheetError("sheet.empty_file")
    if len(data) > MAX_BYTES:
        raise SheetError("sheet.too_large", limit_mb=MAX_BYTES // (1024 * 1024))


def read_sheet(data: bytes, filename: str, columns: list[SheetColumn], *, max_rows: int = MAX_ROWS,
               skip_sheets: Iterable[str] = ()) -> Sheet:
    """The rows under the first header row that names every required column:
    looked for in the first rows of each visible worksheet in turn, except
    those named in `skip_sheets` (such as a template's instructions)."""
    _check_size(data)
    name = filename.lower()
    if data.startswith(_OLE_MAGIC):
        # Encrypted .xlsx files and old .xls files are OLE compound files.
        raise SheetError("sheet.encrypted_or_xls")
    if data.startswith(b"PK"):
        if not name.endswith((".xlsx", ".xlsm")) and not name.endswith(".csv"):
            raise SheetError("sheet.unsupported_type", filename=filename)
        with open_workbook(data) as workbook:
            skipped = {_header_key(s) for s in skip_sheets}
            tables = ((ws.title, worksheet_rows(ws, workbook)) for ws in workbook.worksheets
                      if ws.sheet_state == "visible" and _header_key(ws.title) not in skipped)
            return _read_tables(tables, columns, "xlsx", None, max_rows)
    if name.endswith((".xlsx", ".xlsm")):
        raise SheetError("sheet.not_a_workbook", filename=filename)
    if name.endswith((".csv", ".txt")):
        text, encoding = _decode_text(data)
        return _read_tables([(None, _csv_rows(text))], columns, "csv", encoding, max_rows)
    raise SheetError("sheet.unsupported_type", filename=filename)


def _decode_text(data: bytes) -> tuple[str, str]:
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SheetError("sheet.binary_file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding == "gb18030" and _looks_binary(text):
            break
        return text, encoding
    raise SheetError("sheet.unknown_encoding")


def _looks_binary(text: str) -> bool:
    sample = text[:4096]
    controls = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\r\n\t")
    return controls > len(sample) // 50


def _csv_rows(text: str) -> RawRows:
    if _looks_binary(text):
        raise SheetError("sheet.binary_file")
    sample = text[:8192]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",\t;")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    number = 0
    try:
        for number, row in enumerate(reader, start=1):
            if any(row):
                yield number, dict(enumerate(row)), None
    except csv.Error:
        if "\0" in text:
            raise SheetError("sheet.binary_file") from None
        # Typically a quote that is never closed: the rest of the file reads as one cell.
        raise SheetError("sheet.cell_too_long", row=number + 1, limit=MAX_CSV_CELL_CHARS) from None


# --- from rows to a sheet -------------------------------------------------------------------------------------

def _header_positions(texts: dict[int, str], wanted: dict[str, SheetColumn]) -> dict[str, int]:
    positions: dict[str, int] = {}
    for position in sorted(texts):
        col = wanted.get(_header_key(normalise_text(texts[position])))
        if col is not None and col.key not in positions:
            positions[col.key] = position
    return positions


def _read_tables(tables: Iterable[tuple[str | None, RawRows]], columns: list[SheetColumn], kind: str,
                 encoding: str | None, max_rows: int) -> Sheet:
    """The first table (worksheet) with a header row in its first non-blank
    rows; when none has one, the columns missing from the closest candidate."""
    wanted = {_header_key(h): col for col in columns for h in col.headers}
    required = [col for col in columns if col.required]
    closest: dict[str, int] | None = None
    for sheet_name, rows in tables:
        with closing(rows):  # a worksheet left half-read lets go of its part of the file
            looked_at = 0
            for number, texts, _kinds in rows:
                if not any(text.strip() for text in texts.values()):
                    continue
                positions = _header_positions(texts, wanted)
                if all(col.key in positions for col in required):
                    return _data_rows(rows, number, texts, positions, columns, kind, encoding, sheet_name,
                                      max_rows)
                if closest is None or len(positions) > len(closest):
                    closest = positions
                looked_at += 1
                if looked_at == HEADER_SEARCH_ROWS:
                    break
    if closest is None:
        raise SheetError("sheet.no_rows")
    missing = [col.label for col in required if col.key not in closest]
    raise SheetError("sheet.missing_columns", columns="、".join(missing))


def _report_columns(header: dict[int, str]) -> list[tuple[str, int]]:
    """The file's columns up to its last named one, each with a unique name."""
    used: set[str] = set()
    columns: list[tuple[str, int]] = []
    for position in range(max(p for p, text in header.items() if text.strip()) + 1):
        name = base = normalise_text(header.get(position, "")) or f"#{position + 1}"
        copy = 1
        while name in used:
            copy += 1
            name = f"{base} ({copy})"
        used.add(name)
        columns.append((name, position))
    return columns


def _id_note(text: str, cell_kind: str | None, from_csv: bool) -> str:
    """How Excel may have changed an ID, or "" when it read as typed."""
    if cell_kind == "n":
        digits = text[1:] if text.startswith("-") else text
        return "number_cell" if digits.isdigit() and len(digits) <= 15 else "inexact_number_cell"
    if from_csv:
        if _FLOAT_RENDERING.fullmatch(text):
            return "decimal_text"
        if _EXPONENT_RENDERING.fullmatch(text):
            return "exponent_text"
    return ""


def _data_rows(rows: Iterator[RawRow], header_number: int, header: dict[int, str], positions: dict[str, int],
               columns: list[SheetColumn], kind: str, encoding: str | None, sheet_name: str | None,
               max_rows: int) -> Sheet:
    report_columns = _report_columns(header)
    mapped = [(col.key, positions[col.key], col.is_id) for col in columns if col.key in positions]
    from_csv = kind == "csv"
    result: list[SheetRow] = []
    for number, texts, kinds in rows:
        values: dict[str, str] = {}
        notes: list[CellNote] = []
        blank = True
        for key, position, is_id in mapped:
            text = texts.get(position, "")
            cell_kind = kinds.get(position) if kinds is not None else None
            if cell_kind == "f":
                notes.append(CellNote(key, "formula", text))
                values[key] = ""
                blank = False
                continue
            if text.isascii():
                cleaned = text.strip()
            else:
                cleaned = normalise_id(text) if is_id else normalise_text(text)
            values[key] = cleaned
            if not cleaned:
                continue
            blank = False
            if cleaned != text:
                notes.append(CellNote(key, "normalized", text))
            if is_id:
                detail = _id_note(cleaned, cell_kind, from_csv)
                if detail:
                    notes.append(CellNote(key, "numeric_id", text, detail))
        if blank:
            continue  # blank rows (in the columns read) are skipped; so are rows with only notes beside the table
        if len(result) == max_rows:
            raise SheetError("sheet.too_many_rows", limit=max_rows)
        result.append(SheetRow(number, values, notes, texts, report_columns))
    if not result:
        raise SheetError("sheet.no_rows")
    return Sheet(rows=result, header_row=header_number, headers=[name for name, _ in report_columns],
                 file_kind=kind, encoding=encoding, sheet_name=sheet_name)

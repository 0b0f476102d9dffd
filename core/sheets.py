"""Reading the sheets people upload: .xlsx, or .csv in UTF-8, UTF-8 with BOM,
GB18030/GBK or UTF-16 (what Excel on Chinese Windows saves).

Every value comes back as text. ID columns are never numbers: when Excel has
already turned an ID into a number (a numeric cell, ``123.0``, ``1.23E+05``),
the row carries a note so the caller can explain the lost leading zeros. File
problems raise `SheetError`; row problems are the caller's to judge.
"""

import csv
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from xml.etree.ElementTree import iterparse

from openpyxl.reader.excel import ExcelReader
from openpyxl.utils.datetime import from_excel
from openpyxl.xml.constants import SHARED_STRINGS

from core.errors import DomainError

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 100_000
# An .xlsx is a zip; refuse one that would inflate past this (zip bombs).
MAX_UNZIPPED_BYTES = 400 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200

_NUMBER_LIKE = re.compile(r"^[+-]?(\d+\.\d*|\d*\.\d+|\d+(\.\d*)?[eE][+-]?\d+)$")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class SheetError(DomainError):
    """The file as a whole cannot be read; nothing in it is used."""


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


@dataclass
class SheetRow:
    row_number: int  # as Excel shows it (the header is row 1 when it is the first line)
    values: dict[str, str]
    notes: list[CellNote] = field(default_factory=list)
    raw: dict[str, str] = field(default_factory=dict)  # every column of the file, for error reports

    def notes_of(self, kind: str) -> list[CellNote]:
        return [n for n in self.notes if n.kind == kind]


@dataclass
class Sheet:
    rows: list[SheetRow]
    header_row: int
    headers: list[str]
    file_kind: str  # xlsx | csv
    encoding: str | None = None


def _header_key(text: str) -> str:
    return re.sub(r"[\s_]+", "", unicodedata.normalize("NFKC", text)).lower()


def normalise_text(value: str) -> str:
    """Strip surrounding (also full-width) spaces."""
    return value.strip().strip("\u3000\ufeff").strip()


def normalise_id(value: str) -> str:
    """Full-width digits and letters (０１２３, ＡＢ) to ASCII, spaces stripped."""
    return unicodedata.normalize("NFKC", normalise_text(value)).strip()


def _format_number(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_size(data: bytes) -> None:
    if not data or not data.strip():
        raise SheetError("sheet.empty_file")
    if len(data) > MAX_BYTES:
        raise SheetError("sheet.too_large", limit_mb=MAX_BYTES // (1024 * 1024))


def read_sheet(data: bytes, filename: str, columns: list[SheetColumn], *, max_rows: int = MAX_ROWS) -> Sheet:
    _check_size(data)
    name = filename.lower()
    if data.startswith(_OLE_MAGIC):
        # Encrypted .xlsx files and old .xls files are OLE compound files.
        raise SheetError("sheet.encrypted_or_xls")
    if data.startswith(b"PK"):
        if not name.endswith((".xlsx", ".xlsm")) and not name.endswith(".csv"):
            raise SheetError("sheet.unsupported_type", filename=filename)
        table, kind, encoding = _xlsx_cells(data), "xlsx", None
    elif name.endswith((".xlsx", ".xlsm")):
        raise SheetError("sheet.not_a_workbook", filename=filename)
    elif name.endswith((".csv", ".txt")):
        text, encoding = _decode_text(data)
        table, kind = _csv_cells(text), "csv"
    else:
        raise SheetError("sheet.unsupported_type", filename=filename)
    return _to_rows(table, columns, kind, encoding, max_rows)


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


# A cell: (text, kind) where kind is "s" text, "n" number, "f" formula, "d" date.
Cell = tuple[str, str]


def _csv_cells(text: str) -> list[list[Cell]]:
    if _looks_binary(text):
        raise SheetError("sheet.binary_file")
    sample = text[:8192]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",\t;")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [[(value, "s") for value in row] for row in reader]


_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_ROW, _CELL = _MAIN_NS + "row", _MAIN_NS + "c"
_VALUE, _FORMULA, _INLINE, _TEXT = _MAIN_NS + "v", _MAIN_NS + "f", _MAIN_NS + "is", _MAIN_NS + "t"
_SHARED, _RUN = _MAIN_NS + "si", _MAIN_NS + "r"
_COLUMN_LETTERS = re.compile(r"[A-Z]+")


def _column_index(reference: str) -> int:
    index = 0
    for letter in _COLUMN_LETTERS.match(reference).group():
        index = index * 26 + ord(letter) - 64
    return index - 1


def _number(text: str) -> str:
    try:
        return str(int(text))
    except ValueError:
        return _format_number(float(text))


def _cell(element, shared_strings, date_styles: set[int], epoch) -> Cell:
    """One <c> element as (text, kind); what openpyxl's parser yields, without
    its per-cell objects."""
    formula = element.find(_FORMULA)
    if formula is not None:
        return ("=" + (formula.text or ""), "f")
    kind = element.get("t", "n")
    if kind == "inlineStr":
        inline = element.find(_INLINE)
        return ("".join(t.text or "" for t in inline.iter(_TEXT)) if inline is not None else "", "s")
    value = element.findtext(_VALUE)
    if value is None:
        return ("", "s")
    if kind == "s":
        return (str(shared_strings[int(value)]), "s")
    if kind == "n":
        style = element.get("s")
        if style and int(style) in date_styles:
            try:
                return (from_excel(float(value), epoch).isoformat(), "d")
            except (OverflowError, ValueError):
                return (value, "s")
        return (_number(value), "n")
    if kind == "b":
        return ("TRUE" if value == "1" else "FALSE", "s")
    return (value, "s")  # str (a formula's cached text), e (an error such as #N/A), d (ISO date)


def _shared_strings(source) -> list[str]:
    """The workbook's shared string table: each <si> is plain text (<t>) or rich
    text runs (<r><t>); phonetic guides (<rPh>) are not part of the value."""
    strings: list[str] = []
    for _event, node in iterparse(source):
        if node.tag == _SHARED:
            plain = node.find(_TEXT)
            text = plain.text or "" if plain is not None else \
                "".join(run.findtext(_TEXT) or "" for run in node.findall(_RUN))
            strings.append(text.replace("x005F_", ""))
            node.clear()
    return strings


class _WorkbookReader(ExcelReader):
    """openpyxl's reader with a lean shared-string table: its own builds an
    object per string, which at 200,000 distinct strings costs seconds."""

    def read_strings(self) -> None:
        part = self.package.find(SHARED_STRINGS)
        if part is not None:
            with self.archive.open(part.PartName[1:]) as source:
                self.shared_strings = _shared_strings(source)


def _xlsx_cells(data: bytes) -> list[list[Cell]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
        infos = archive.infolist()
    except zipfile.BadZipFile:
        raise SheetError("sheet.not_a_workbook", filename="") from None
    if "xl/workbook.xml" not in names:
        raise SheetError("sheet.not_a_workbook", filename="")
    unzipped = sum(i.file_size for i in infos)
    compressed = max(1, sum(i.compress_size for i in infos))
    if unzipped > MAX_UNZIPPED_BYTES or unzipped / compressed > MAX_COMPRESSION_RATIO:
        raise SheetError("sheet.zip_bomb")
    try:
        reader = _WorkbookReader(io.BytesIO(data), read_only=True, keep_vba=False, data_only=False,
                                 keep_links=False)
        reader.read()
        workbook = reader.wb
    except Exception:  # openpyxl raises many kinds on a damaged file
        raise SheetError("sheet.not_a_workbook", filename="") from None
    try:
        worksheet = workbook.worksheets[0]
        table: list[list[Cell]] = []
        # openpyxl reads the workbook's structure and shared strings; the rows are
        # read here straight from the sheet's XML, without openpyxl's per-cell
        # objects (they cost more than the whole rest of an import at 50,000 rows).
        shared, date_styles, epoch = worksheet._shared_strings, workbook._date_formats, workbook.epoch
        try:
            with worksheet._get_source() as source:
                cells: list[Cell] = []
                for _event, element in iterparse(source):
                    if element.tag == _CELL:
                        reference = element.get("r")
                        position = _column_index(reference) if reference else len(cells)
                        if position >= len(cells):
                            cells.extend([("", "s")] * (position + 1 - len(cells)))
                        cells[position] = _cell(element, shared, date_styles, epoch)
                    elif element.tag == _ROW:
                        number = element.get("r")
                        while number and len(table) < int(number) - 1:
                            table.append([])  # a row the file leaves out keeps its Excel row number
                        table.append(cells)
                        cells = []
                        element.clear()
                        if len(table) > MAX_ROWS + 50:
                            break
        except Exception:  # a damaged sheet part fails in many ways
            raise SheetError("sheet.not_a_workbook", filename="") from None
        return table
    finally:
        workbook.close()


def _to_rows(table: list[list[Cell]], columns: list[SheetColumn], kind: str,
             encoding: str | None, max_rows: int) -> Sheet:
    header_index = next((i for i, row in enumerate(table) if any(text.strip() for text, _ in row)), None)
    if header_index is None:
        raise SheetError("sheet.no_rows")
    header_cells = [normalise_text(text) for text, _ in table[header_index]]
    wanted = {_header_key(h): col for col in columns for h in col.headers}
    positions: dict[str, int] = {}
    for position, header in enumerate(header_cells):
        col = wanted.get(_header_key(header))
        if col is not None and col.key not in positions:
            positions[col.key] = position
    missing = [col.label for col in columns if col.required and col.key not in positions]
    if missing:
        raise SheetError("sheet.missing_columns", columns="、".join(missing))
    by_key = {col.key: col for col in columns}
    rows: list[SheetRow] = []
    for offset, cells in enumerate(table[header_index + 1:], start=header_index + 2):
        if not any(text.strip() for text, _ in cells):
            continue  # blank rows are skipped
        if len(rows) >= max_rows:
            raise SheetError("sheet.too_many_rows", limit=max_rows)
        row = SheetRow(row_number=offset, values={})
        row.raw = {header_cells[i] or f"#{i + 1}": cells[i][0] for i in range(min(len(cells), len(header_cells)))}
        for key, position in positions.items():
            text, cell_kind = cells[position] if position < len(cells) else ("", "s")
            col = by_key[key]
            if cell_kind == "f":
                row.notes.append(CellNote(key, "formula", text))
                row.values[key] = ""
                continue
            cleaned = normalise_id(text) if col.is_id else normalise_text(text)
            if cleaned != text and cleaned:
                row.notes.append(CellNote(key, "normalized", text))
            if col.is_id and cleaned and (cell_kind == "n" or _NUMBER_LIKE.match(cleaned)):
                row.notes.append(CellNote(key, "numeric_id", text))
            row.values[key] = cleaned
        rows.append(row)
    if not rows:
        raise SheetError("sheet.no_rows")
    return Sheet(rows=rows, header_row=header_index + 1, headers=header_cells, file_kind=kind, encoding=encoding)

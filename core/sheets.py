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
import zipfile
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from string import ascii_uppercase
from xml.etree.ElementTree import Element, iterparse

from openpyxl.reader.excel import ExcelReader
from openpyxl.utils.datetime import from_excel
from openpyxl.xml.constants import SHARED_STRINGS

from base.errors import DomainError

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 100_000
# An .xlsx is a zip whose parts are XML; what reading costs is bounded by the
# parts' inflated sizes (zipfile never inflates past a member's declared size).
# Worksheets and the shared strings are streamed element by element, so each
# may be large; every other XML part openpyxl parses whole, as a tree of some
# 20 bytes of memory per byte of XML, so each is kept small. A 10 MB file of
# 100,000 rows holds about 25–60 MB of worksheet XML.
MAX_SHEET_PART_BYTES = 128 * 1024 * 1024
MAX_OTHER_PART_BYTES = 8 * 1024 * 1024
MAX_UNZIPPED_BYTES = 400 * 1024 * 1024
# Worksheet XML inflates about 10–30×; far beyond, a part is a zip bomb (judged
# per part, so a stored member of random bytes cannot dilute it).
MAX_COMPRESSION_RATIO = 200
_RATIO_FROM_BYTES = 1024 * 1024
# Excel holds at most 32,767 characters in a cell; its runs and phonetic
# guides stay far below this many elements.
MAX_CELL_ELEMENTS = 10_000
# The csv module's field limit: a CSV cell (a quoted one may span lines) longer than this is refused.
MAX_CSV_CELL_CHARS = csv.field_size_limit()
# Excel's own limits: a row or column beyond them is a crafted file.
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
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


def _format_number(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_size(data: bytes) -> None:
    if not data or not data.strip():
        raise SheetError("sheet.empty_file")
    if len(data) > MAX_BYTES:
        raise SheetError("sheet.too_large", limit_mb=MAX_BYTES // (1024 * 1024))


# A row as read: its Excel row number, the text of each non-empty cell by
# column position, and the kind of each cell that is not plain text ("n"
# number, "f" formula, "d" date), or None when all are text.
RawRow = tuple[int, dict[int, str], dict[int, str] | None]
# A table's rows, read lazily; closing it lets go of its part of the file.
RawRows = Generator[RawRow, None, None]


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
        with _open_workbook(data) as workbook:
            skipped = {_header_key(s) for s in skip_sheets}
            tables = ((ws.title, _xlsx_rows(ws, workbook)) for ws in workbook.worksheets
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


# --- xlsx -----------------------------------------------------------------------------------------------------

_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_ROW, _CELL = _MAIN_NS + "row", _MAIN_NS + "c"
_VALUE, _FORMULA, _INLINE, _TEXT = _MAIN_NS + "v", _MAIN_NS + "f", _MAIN_NS + "is", _MAIN_NS + "t"
_SHARED, _RUN = _MAIN_NS + "si", _MAIN_NS + "r"
_DIGITS = "0123456789"


def _column_names() -> dict[str, int]:
    """Column letters A … XFD to their position; anything else is not a column."""
    names: dict[str, int] = {}
    letters = [""]
    while len(names) < EXCEL_MAX_COLUMNS:
        letters = [prefix + letter for prefix in letters for letter in ascii_uppercase]
        for name in letters:
            if len(names) == EXCEL_MAX_COLUMNS:
                break
            names[name] = len(names)
    return names


_COLUMNS = _column_names()


class _DamagedSheet(Exception):
    """A sheet part that no spreadsheet program would have written."""


def _number(text: str) -> str:
    try:
        return str(int(text))
    except ValueError:
        return _format_number(float(text))


def _cell(element, shared_strings, date_styles: set[int], epoch) -> tuple[str, str]:
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


def _elements(source, keep: str) -> Iterator[Element]:
    """The elements of an XML part as each ends, letting go of every one once
    it has been seen, except those inside a `keep` element, which are let go
    with it. Memory stays that of one `keep` element whatever else the part
    holds; one with more than MAX_CELL_ELEMENTS elements is a crafted part."""
    open_elements: list[Element] = []  # the open elements outside any `keep` element
    push, pop = open_elements.append, open_elements.pop
    depth = kept = 0  # how deep inside a `keep` element (0: outside); its elements so far
    for event, element in iterparse(source, events=("start", "end")):
        if event == "start":
            if depth:
                depth += 1
                kept += 1
                if kept > MAX_CELL_ELEMENTS:
                    raise _DamagedSheet
            else:
                push(element)
                if element.tag == keep:
                    depth = kept = 1
            continue
        if depth > 1:
            depth -= 1
            continue
        depth = 0
        pop()
        yield element
        if open_elements:
            # Each element is let go as it ends, so this one is its parent's only child.
            del open_elements[-1][-1]


def _shared_strings(source) -> list[str]:
    """The workbook's shared string table: each <si> is plain text (<t>) or rich
    text runs (<r><t>); phonetic guides (<rPh>) are not part of the value."""
    strings: list[str] = []
    for node in _elements(source, _SHARED):
        if node.tag == _SHARED:
            plain = node.find(_TEXT)
            text = plain.text or "" if plain is not None else \
                "".join(run.findtext(_TEXT) or "" for run in node.findall(_RUN))
            strings.append(text.replace("x005F_", ""))
    return strings


class _WorkbookReader(ExcelReader):
    """openpyxl's reader with a lean shared-string table: its own builds an
    object per string, which at 200,000 distinct strings costs seconds."""

    def read_strings(self) -> None:
        part = self.package.find(SHARED_STRINGS)
        if part is not None:
            with self.archive.open(part.PartName[1:]) as source:
                self.shared_strings = _shared_strings(source)


def _is_streamed(name: str) -> bool:
    return name.startswith("xl/worksheets/") and name.count("/") == 2 or name == "xl/sharedStrings.xml"


def _check_parts(infos: list[zipfile.ZipInfo]) -> None:
    """Refuse a workbook whose parts would inflate past what reading it may cost."""
    if sum(i.file_size for i in infos) > MAX_UNZIPPED_BYTES:
        raise SheetError("sheet.zip_bomb")
    for info in infos:
        if _is_streamed(info.filename):
            if info.file_size > MAX_SHEET_PART_BYTES:
                raise SheetError("sheet.part_too_large", part=info.filename[:100],
                                 limit_mb=MAX_SHEET_PART_BYTES // (1024 * 1024))
            if info.file_size > _RATIO_FROM_BYTES and \
                    info.file_size / max(1, info.compress_size) > MAX_COMPRESSION_RATIO:
                raise SheetError("sheet.zip_bomb")
        elif info.file_size > MAX_OTHER_PART_BYTES and info.filename.endswith((".xml", ".rels", ".vml")):
            raise SheetError("sheet.part_too_large", part=info.filename[:100],
                             limit_mb=MAX_OTHER_PART_BYTES // (1024 * 1024))


@contextmanager
def _open_workbook(data: bytes):
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
        infos = archive.infolist()
    except zipfile.BadZipFile:
        raise SheetError("sheet.not_a_workbook", filename="") from None
    if "xl/workbook.xml" not in names:
        raise SheetError("sheet.not_a_workbook", filename="")
    _check_parts(infos)
    try:
        reader = _WorkbookReader(io.BytesIO(data), read_only=True, keep_vba=False, data_only=False,
                                 keep_links=False)
        reader.read()
        workbook = reader.wb
    except Exception:  # openpyxl raises many kinds on a damaged file
        raise SheetError("sheet.not_a_workbook", filename="") from None
    try:
        yield workbook
    finally:
        workbook.close()


def _xlsx_rows(worksheet, workbook) -> RawRows:
    """The worksheet's rows straight from its XML, without openpyxl's per-cell
    objects (they cost more than the whole rest of an import at 50,000 rows).
    Only rows with a non-empty cell are yielded and nothing is kept for the
    rows a file leaves out, so a row number says nothing about memory."""
    shared, date_styles, epoch = worksheet._shared_strings, workbook._date_formats, workbook.epoch
    try:
        with worksheet._get_source() as source:
            texts: dict[int, str] = {}
            kinds: dict[int, str] | None = None
            last_row, position = 0, -1
            for element in _elements(source, _CELL):
                tag = element.tag
                if tag == _CELL:
                    reference = element.get("r")
                    if reference is None:
                        position += 1
                        if position >= EXCEL_MAX_COLUMNS:
                            raise _DamagedSheet
                    else:
                        letters = reference.rstrip(_DIGITS)
                        found = _COLUMNS.get(letters)
                        position = found if found is not None else _COLUMNS[letters.upper()]  # KeyError beyond XFD
                    kind = element.get("t")
                    if kind == "s" and len(element) == 1 and element[0].tag == _VALUE and element[0].text is not None:
                        text = shared[int(element[0].text)]  # the usual cell, read without the general path
                        if text:
                            texts[position] = text
                        continue
                    text, kind = _cell(element, shared, date_styles, epoch)
                    if text:
                        texts[position] = text
                        if kind != "s":
                            if kinds is None:
                                kinds = {}
                            kinds[position] = kind
                elif tag == _ROW:
                    number = element.get("r")
                    last_row = int(number) if number is not None else last_row + 1
                    if not 0 < last_row <= EXCEL_MAX_ROWS:
                        raise _DamagedSheet
                    if texts:
                        yield last_row, texts, kinds
                        texts, kinds = {}, None
                    position = -1
    except SheetError:
        raise
    except Exception:  # a damaged or crafted sheet part fails in many ways
        raise SheetError("sheet.not_a_workbook", filename="") from None


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

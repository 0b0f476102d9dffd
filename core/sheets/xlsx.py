"""Reading an .xlsx: its worksheets streamed straight from their XML, with the
parts' sizes bounded before anything is inflated (a crafted workbook cannot
make the reader hold more than the limits below)."""

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from string import ascii_uppercase
from xml.etree.ElementTree import Element, iterparse

from openpyxl.reader.excel import ExcelReader
from openpyxl.utils.datetime import from_excel
from openpyxl.xml.constants import SHARED_STRINGS

from core.sheets.raw import RawRows, SheetError

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
# Excel's own limits: a row or column beyond them is a crafted file.
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384

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
def open_workbook(data: bytes):
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


def worksheet_rows(worksheet, workbook) -> RawRows:
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


def _format_number(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

"""Table exports: xlsx, and CSV in utf-8-sig (what Excel on Chinese Windows
opens correctly). Cells that a spreadsheet would run as a formula are neutralised.
An export may carry a header — (label, value) lines such as the filters
applied — above the table (CSV) or on a sheet of its own after it (xlsx)."""

import csv
import io
import re
from collections.abc import Sequence

import pandas as pd

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What Windows, macOS or Linux refuse in a file name (and spaces, kept out for tidiness).
_NOT_IN_FILE_NAMES = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f\s]+')
# Excel refuses these in a sheet name, and more than 31 characters.
_NOT_IN_SHEET_NAMES = re.compile(r"[\\/:*?\[\]]+")


def file_name(*parts: str) -> str:
    """A download's name without its extension: the page, the table and the filters applied
    (in the user's words, Chinese included), joined by "_", with what a file system refuses
    replaced by "-"; empty parts are left out."""
    cleaned = (_NOT_IN_FILE_NAMES.sub("-", part).strip("-.") for part in parts)
    return "_".join(part for part in cleaned if part)[:150] or "export"


def sheet_name(title: str) -> str:
    return _NOT_IN_SHEET_NAMES.sub("-", title)[:31] or "Sheet1"


def neutralise(value: object) -> object:
    """Prefix text that starts like a formula with a quote (CSV/formula injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _is_text(column: pd.Series) -> bool:
    # pandas 3 gives text its own dtype; older frames hold it as object.
    return column.dtype == object or pd.api.types.is_string_dtype(column)


def _safe(frame: pd.DataFrame) -> pd.DataFrame:
    safe = frame.copy()
    for column in safe.columns:
        if _is_text(safe[column]):
            safe[column] = safe[column].map(neutralise)
    return safe


def to_csv_bytes(frame: pd.DataFrame, *, header: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = io.StringIO()
    if header:
        writer = csv.writer(lines, lineterminator="\n")
        writer.writerows([neutralise(label), neutralise(value)] for label, value in header)
        writer.writerow([])
    return (lines.getvalue() + _safe(frame).to_csv(index=False)).encode("utf-8-sig")


def to_xlsx_bytes(frame: pd.DataFrame, title: str = "Sheet1", *, header: Sequence[tuple[str, str]] = (),
                  header_sheet: str = "Filters") -> bytes:
    buffer = io.BytesIO()
    table_sheet = sheet_name(title)
    safe = _safe(frame)
    with pd.ExcelWriter(buffer, engine="xlsxwriter",
                        engine_kwargs={"options": {"strings_to_formulas": False, "strings_to_numbers": False,
                                                   "strings_to_urls": False}}) as writer:
        safe.to_excel(writer, index=False, sheet_name=table_sheet)
        worksheet = writer.sheets[table_sheet]
        text = writer.book.add_format({"num_format": "@"})
        for index, column in enumerate(safe.columns):
            width = min(40, max(8, int(safe[column].astype(str).str.len().fillna(0).max() if len(safe) else 8) + 2,
                                len(str(column)) * 2 + 2))
            worksheet.set_column(index, index, width, text if _is_text(safe[column]) else None)
        if header:
            notes = writer.book.add_worksheet(sheet_name(header_sheet))
            for row, (label, value) in enumerate(header):
                notes.write_string(row, 0, str(neutralise(label)))
                notes.write_string(row, 1, str(neutralise(value)))
            notes.set_column(0, 0, 14)
            notes.set_column(1, 1, 60)
    return buffer.getvalue()

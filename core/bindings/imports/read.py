"""Reading a binding sheet: its columns and the parsed file (no database)."""

import gc
import hashlib
import threading
from dataclasses import dataclass

from core.sheets import SheetColumn, SheetRow, read_sheet
from i18n import t

BINDING_COLUMNS = [
    SheetColumn("branch_code", ("分公司编码", "branch_code"), is_id=True),
    SheetColumn("crm_store_id", ("CRM门店ID", "crm_store_id"), is_id=True),
    SheetColumn("store_name", ("门店名称", "store_name"), required=False),
    SheetColumn("wecom_userid", ("企微账号", "wecom_userid"), is_id=True),
    SheetColumn("wecom_name", ("企微账号名称", "wecom_name")),
    # One or more userids in order (core.bindings.imports.standby_column).
    SheetColumn("standby_userids", ("备用企微账号", "standby_userids"), required=False),
]
LABELS = {c.key: c.label for c in BINDING_COLUMNS}
REQUIRED_VALUES = ("branch_code", "crm_store_id", "wecom_userid", "wecom_name")


class _OlderObjectsSkipped:
    """While an import step runs, the cyclic garbage collector skips the
    objects that existed before it (`gc.freeze`). Reading and judging 50,000
    rows allocates millions of objects, and every collection pass would walk
    the whole process (every user's session) again and again: a quarter of
    the run time. The collector keeps running for everyone; only cycles among
    objects older than the step wait until it ends (the last step running in
    this process unfreezes them). The command line, a process of its own,
    turns the collector off altogether (console.cli.bindings)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0

    def __enter__(self) -> None:
        with self._lock:
            if self._running == 0:
                gc.freeze()
            self._running += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                gc.unfreeze()


_gc_paused = _OlderObjectsSkipped()


@dataclass(frozen=True)
class ParsedSheet:
    filename: str
    sha256: str
    rows: list[SheetRow]
    headers: list[str]
    file_kind: str
    encoding: str | None
    sheet_name: str | None = None
    header_row: int = 1



def parse_sheet(data: bytes, filename: str) -> ParsedSheet:
    """Read the file (raises SheetError for a file that is not a usable sheet).
    The template's instructions sheet, with its example rows, is never read."""
    with _gc_paused:
        sheet = read_sheet(data, filename, BINDING_COLUMNS, skip_sheets=[t("binding_import.template.help_sheet")])
    return ParsedSheet(filename=filename, sha256=hashlib.sha256(data).hexdigest(), rows=sheet.rows,
                       headers=sheet.headers, file_kind=sheet.file_kind, encoding=sheet.encoding,
                       sheet_name=sheet.sheet_name, header_row=sheet.header_row)


@dataclass(frozen=True)
class RowIssue:
    key: str
    params: dict

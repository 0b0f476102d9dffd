"""The sheets we hand out: the upload template and the error report."""

import io

import pandas as pd

from base.errors import DomainError
from core.bindings.imports.judge import ERROR, Preview, PreviewRow
from core.bindings.imports.read import BINDING_COLUMNS
from core.exports import to_xlsx_bytes
from i18n import error_text, t


def template_headers() -> list[str]:
    return [c.label for c in BINDING_COLUMNS]


def template_csv() -> bytes:
    """The header row in utf-8-sig, what Excel on Chinese Windows opens correctly."""
    return (",".join(template_headers()) + "\r\n").encode("utf-8-sig")


def template_xlsx(*, branch_codes: list[str], sheet_title: str, help_title: str, codes_title: str,
                  instructions: list[str], example_caption: str, example: list[list[str]],
                  validation_messages: dict[str, str]) -> bytes:
    """The upload template: ID columns formatted as text (so Excel keeps leading
    zeros), data validation on the branch code and the ID lengths, and a second
    sheet with instructions and an example. The branch codes live on a hidden
    sheet the validation refers to: a list written into the validation itself
    may hold 255 characters, some fifty codes. Texts come from the caller's catalog."""
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"strings_to_numbers": False, "strings_to_formulas": False,
                                        "strings_to_urls": False})
    text = book.add_format({"num_format": "@"})
    header = book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "num_format": "@"})
    sheet = book.add_worksheet(sheet_title)
    last = 100_000
    for index, column in enumerate(BINDING_COLUMNS):
        sheet.write_string(0, index, column.label, header)
        sheet.set_column(index, index, 24 if column.key.endswith("name") else 18, text)
    sheet.freeze_panes(1, 0)
    help_sheet = book.add_worksheet(help_title)
    codes_sheet = book.add_worksheet(codes_title)
    if branch_codes:
        for row, code in enumerate(branch_codes):
            codes_sheet.write_string(row, 0, code, text)
        quoted = codes_title.replace("'", "''")
        sheet.data_validation(1, 0, last, 0, {
            "validate": "list", "source": f"='{quoted}'!$A$1:$A${len(branch_codes)}", "ignore_blank": True,
            "error_title": validation_messages["title"], "error_message": validation_messages["branch_code"]})
    codes_sheet.hide()
    for position, key in ((1, "crm_store_id"), (3, "wecom_userid")):
        sheet.data_validation(1, position, last, position, {
            "validate": "length", "criteria": "between", "minimum": 1, "maximum": 64, "ignore_blank": True,
            "error_title": validation_messages["title"], "error_message": validation_messages[key]})
    sheet.data_validation(1, 4, last, 4, {
        "validate": "length", "criteria": "between", "minimum": 1, "maximum": 100, "ignore_blank": True,
        "error_title": validation_messages["title"], "error_message": validation_messages["wecom_name"]})
    help_sheet.set_column(0, 0, 20, text)
    help_sheet.set_column(1, 4, 22, text)
    row = 0
    for line in instructions:
        help_sheet.write_string(row, 0, line)
        row += 1
    row += 1
    help_sheet.write_string(row, 0, example_caption, book.add_format({"bold": True}))
    row += 1
    for index, label in enumerate(template_headers()):
        help_sheet.write_string(row, index, label, header)
    for values in example:
        row += 1
        for index, value in enumerate(values):
            help_sheet.write_string(row, index, value, text)
    book.close()
    return buffer.getvalue()


def error_report_xlsx(preview: Preview) -> bytes:
    """The uploaded rows as the file had them, with the Excel row number, the
    status and the reasons beside them. The file's own columns keep their
    names; where one of ours is taken, ours gets a suffix."""
    taken = set(preview.parsed.headers)

    def ours(key: str) -> str:
        name = t(key)
        while name in taken:
            name += t("binding_import.report.ours")
        taken.add(name)
        return name

    row_column, status_column, reason_column = (ours("binding_import.col.row"), ours("binding_import.col.status"),
                                                ours("binding_import.col.reason"))
    statuses = {s: t(f"binding_import.status.{s}") for s in ("new", "changed", "unchanged", ERROR)}
    frame = pd.DataFrame([{row_column: r.row_number, **r.raw, status_column: statuses[r.status],
                           reason_column: row_reasons(r)} for r in preview.rows],
                         columns=[row_column, *preview.parsed.headers, status_column, reason_column])
    return to_xlsx_bytes(frame, t("binding_import.template.sheet"))


def row_reasons(row: PreviewRow) -> str:
    """A row's errors, then its warnings, in words."""
    return "；".join(error_text(DomainError(i.key, **i.params)) for i in row.errors + row.warnings)

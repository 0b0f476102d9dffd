"""Paging, tables and downloads used across pages."""

import math
from collections.abc import Callable, Sequence

import pandas as pd
import streamlit as st

from base.timeutil import format_display, utcnow
from core.exports import file_name, to_csv_bytes, to_xlsx_bytes
from i18n import t

PAGE_SIZES = [25, 50, 100, 200]


def page_window(key: str, default_size: int = 50) -> tuple[int, int]:
    """(offset, limit) of the page the user chose, read before querying so each
    rerun runs the page query once."""
    size = st.session_state.get(f"{key}_size", default_size)
    page = st.session_state.get(f"{key}_page", 1)
    return (int(page) - 1) * size, size


def pager(total: int, key: str, default_size: int = 50) -> None:
    """Page controls under a table. A page past the end (the filter changed) goes
    back to the last page."""
    size = st.session_state.get(f"{key}_size", default_size)
    pages = max(1, math.ceil(total / size))
    if st.session_state.get(f"{key}_page", 1) > pages:
        st.session_state[f"{key}_page"] = pages
        st.rerun()
    left, right = st.columns([3, 1])
    page = left.number_input(t("common.page"), min_value=1, max_value=pages, value=1, step=1, key=f"{key}_page")
    right.selectbox(t("common.rows_per_page"), PAGE_SIZES, index=PAGE_SIZES.index(default_size), key=f"{key}_size")
    st.caption(t("common.page_of", page=page, pages=pages, total=total))


def table(frame: pd.DataFrame, **kwargs) -> None:
    """A read-only table, in Chinese where Streamlit would write English: no table but
    a line when there are no rows (not "empty" across the grid), "—" in a cell without
    a value (not "None"); the numbers stay numbers for sorting."""
    if frame.empty:
        st.caption(t("common.no_rows"))
        return
    kwargs.setdefault("hide_index", True)
    kwargs.setdefault("width", "stretch")
    if frame.isna().to_numpy().any():
        st.dataframe(frame.style.format(na_rep=t("common.none"), precision=1), **kwargs)
    else:
        st.dataframe(frame, **kwargs)


def download_buttons(frame: pd.DataFrame | Callable[[], pd.DataFrame], title: str,
                     filters: Sequence[tuple[str, str]], key: str) -> None:
    """xlsx and CSV (utf-8-sig, what Excel on Chinese Windows opens) of what is shown, named after
    `title` (the page, and the table where a page has several) and the filters' values, with the
    filters — (label, chosen value) as the page shows them — on the workbook's 筛选条件 sheet.
    The CSV stays a plain table, so that it opens and re-imports as one. `frame` may be a function
    that reads the table: a list too long to read on every rerun is then read only when clicked."""
    exported_at = format_display(utcnow(), "%Y-%m-%d %H:%M")
    # A filter left at 全部 narrows nothing: on the sheet, not in the name.
    name = file_name(title, *(value for _label, value in filters if value != t("common.all")),
                     format_display(utcnow(), "%Y%m%d"))
    header = [(t("common.export.table"), title), *filters, (t("common.export.at"), exported_at)]

    def rows() -> pd.DataFrame:
        return frame() if callable(frame) else frame

    left, right = st.columns(2)
    # The files are made when clicked, not on every rerun: tens of thousands of rows take seconds.
    left.download_button(t("common.download_xlsx"),
                         lambda: to_xlsx_bytes(rows(), title, header=header, header_sheet=t("common.export.filters")),
                         file_name=f"{name}.xlsx",
                         mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                         key=f"{key}_xlsx", on_click="ignore")
    right.download_button(t("common.download_csv"), lambda: to_csv_bytes(rows()), file_name=f"{name}.csv",
                          mime="text/csv", key=f"{key}_csv", on_click="ignore")

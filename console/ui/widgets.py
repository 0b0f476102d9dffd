"""Paging, tables and downloads used across pages."""

import math

import pandas as pd
import streamlit as st

from core.exports import to_csv_bytes, to_xlsx_bytes
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


def download_buttons(frame: pd.DataFrame, basename: str, key: str) -> None:
    """xlsx and CSV (utf-8-sig, what Excel on Chinese Windows opens) of what is shown."""
    left, right = st.columns(2)
    left.download_button(t("common.download_xlsx"), to_xlsx_bytes(frame), file_name=f"{basename}.xlsx",
                         mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                         key=f"{key}_xlsx", on_click="ignore")
    right.download_button(t("common.download_csv"), to_csv_bytes(frame), file_name=f"{basename}.csv",
                          mime="text/csv", key=f"{key}_csv", on_click="ignore")

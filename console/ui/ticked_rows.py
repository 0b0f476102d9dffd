"""Ticked rows of a selectable table, as the operator saw them.

A keyed st.dataframe keeps its ticks as row positions even when its data
changes, and every rerun queries the rows again. So the ticks are read against
the rows as they were last rendered (kept in session state with the page they
belong to), and when the ticked rows are no longer what sits at those positions
(another operator changed or moved them), the ticks are cleared rather than
left on other rows.
"""

from collections.abc import Callable, Hashable
from typing import Any

import pandas as pd
import streamlit as st


class TickedTable:
    def __init__(self, name: str, page: Hashable, same_row: Callable[[Any, Any], bool]) -> None:
        """`page` identifies what the table shows (filters, paging): ticks made
        on another page are dropped. `same_row(seen, fresh)` says whether a
        ticked row is still the row the operator ticked."""
        self.name = name
        self.page = page
        self.same_row = same_row
        st.session_state.setdefault(self._generation_key, 0)

    @property
    def _generation_key(self) -> str:
        return f"{self.name}_generation"

    @property
    def _rendered_key(self) -> str:
        return f"{self.name}_rendered"

    @property
    def key(self) -> str:
        """The dataframe's key; a new one clears the ticks in the browser too."""
        return f"{self.name}_{st.session_state[self._generation_key]}"

    def clear(self) -> None:
        st.session_state[self._generation_key] += 1

    def ticked(self, fresh: list) -> tuple[list, list]:
        """(the ticked rows as rendered, the ticked rows that changed). Call
        before rendering `fresh`. When any ticked row changed, the ticks are
        cleared and no row is returned to act on: the caller says which changed."""
        state = st.session_state.get(self.key)
        positions = list(state["selection"]["rows"]) if state else []
        if not positions:
            return [], []
        rendered = st.session_state.get(self._rendered_key)
        if rendered is None or rendered[0] != self.page:
            self.clear()
            return [], []
        seen = [(i, rendered[1][i]) for i in positions if i < len(rendered[1])]
        changed = [row for i, row in seen if i >= len(fresh) or not self.same_row(row, fresh[i])]
        if changed:
            self.clear()
            return [], changed
        return [row for _, row in seen], []

    def render(self, frame: pd.DataFrame, rows: list, *, selectable: bool = True, **kwargs) -> None:
        """Show `frame` (one line per item of `rows`) and remember `rows` as rendered."""
        st.session_state[self._rendered_key] = (self.page, list(rows))
        if frame.empty:
            # The page says there are no rows; Streamlit would draw an English "empty" across the grid.
            return
        st.dataframe(frame, key=self.key, on_select="rerun" if selectable else "ignore", **kwargs)

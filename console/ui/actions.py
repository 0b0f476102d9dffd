"""One user action on a page, and the refusal it may end in shown in the user's words."""

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from base.errors import DomainError
from console.ui.text import md_error


@contextmanager
def showing_errors(*, stop: bool = False) -> Iterator[None]:
    """Run the body of one action: a DomainError skips the rest of the body and is
    shown in Chinese, its names and values as plain text; with `stop` the page ends
    there, for what follows needs the body.

    The body opens its own `db()` session and shows its success or reruns after that
    block: st.rerun() inside the session would roll the action back."""
    try:
        yield
    except DomainError as exc:
        st.error(md_error(exc))
        if stop:
            st.stop()

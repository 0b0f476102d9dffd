"""One user action on a page, and the refusal it may end in shown in the user's words."""

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from base.errors import DomainError
from i18n import error_text


@contextmanager
def showing_errors(*, stop: bool = False) -> Iterator[None]:
    """Run the body of one action: a DomainError skips the rest of the body and is
    shown in Chinese; with `stop` the page ends there, for what follows needs the body.

    The body opens its own `db()` session and shows its success or reruns after that
    block: st.rerun() inside the session would roll the action back."""
    try:
        yield
    except DomainError as exc:
        st.error(error_text(exc))
        if stop:
            st.stop()

"""Stored problems as the console shows them."""

from base.problems import Problem
from i18n import error_text


def shown(stored: str | None) -> str | None:
    """The words a page shows for a stored problem (None when there is none)."""
    return error_text(Problem.decode(stored)) if stored else None

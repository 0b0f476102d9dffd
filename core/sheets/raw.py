"""What each format's reader yields, and the error that refuses a whole file."""

from collections.abc import Generator

from base.errors import DomainError


class SheetError(DomainError):
    """The file as a whole cannot be read; nothing in it is used."""


# A row as read: its Excel row number, the text of each non-empty cell by
# column position, and the kind of each cell that is not plain text ("n"
# number, "f" formula, "d" date), or None when all are text.
RawRow = tuple[int, dict[int, str], dict[int, str] | None]
# A table's rows, read lazily; closing it lets go of its part of the file.
RawRows = Generator[RawRow, None, None]

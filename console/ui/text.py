"""Text from data (names, userids, file names, error texts) shown as plain text.

Streamlit renders Markdown in st.markdown, st.success/error/…, st.caption,
headings, dialog titles and widget labels: a store named `![x](http://host/p.png)`
would load an image from that host in HQ's browser. Everything interpolated into
such an element goes through `plain` (or `md`, which does it for a message's
parameters), so only the catalog's own text can carry Markdown.
"""

import re
from typing import Any

from i18n import Keyed, t

# Every ASCII punctuation mark Markdown, Streamlit's directives (:red[…], :emoji:) or
# its LaTeX ($…$) could read; a backslash before any of them shows the mark itself.
_MARKUP = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:&=\"'^%@/;?,])")
# GitHub's autolinks (http://…, www.…, a@b.c) are found in the text after escapes are
# read, so an invisible word joiner breaks the pattern itself.
_AUTOLINK = re.compile(r"(?i)(?<=:)(?=//)|(?<=www)(?=\.)|(?<=@)")
_WORD_JOINER = "\u2060"


def plain(value: Any) -> str:
    """`value` as text that Markdown shows literally: no links, images, emphasis or HTML."""
    text = _AUTOLINK.sub(_WORD_JOINER, str(value))
    return _MARKUP.sub(r"\\\1", text).replace("\n", "  \n")


def md(key: str, **params: Any) -> str:
    """The catalog's message with each text parameter made plain (numbers stay numbers for their format)."""
    return t(key, **{name: plain(value) if isinstance(value, str) else value for name, value in params.items()})


def md_error(error: Keyed) -> str:
    """A refusal for a Markdown element; its parameters come from data."""
    return md(error.key, **error.params)

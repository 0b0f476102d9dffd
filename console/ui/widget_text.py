"""Chinese for the few words Streamlit's widgets write themselves and take from no
parameter: the file uploader's "Upload" button and its "200MB per file" line (the
pages' labels say each file's real limit), and the date input's empty-field
placeholders "yyyy / mm / dd" (its calendar follows the browser's language). Replaced in CSS on the elements'
`data-testid`s, which Streamlit keeps stable for its own end-to-end tests; the
browser test tests/browser/test_page_shell.py notices when they change."""

import streamlit as st

from i18n import t


def css_text(key: str) -> str:
    """A message as a CSS string (our texts hold no quotes or backslashes; dropped if they ever do)."""
    return '"' + t(key).replace('"', "").replace("\\", "") + '"'


def chinese_widget_text() -> None:
    """Call once per run, from the app shell; a style-only st.html takes no space on the page."""
    st.html(
        "<style>"
        '[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"] p{display:none}'
        '[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"]::after'
        f"{{content:{css_text('common.upload_button')}}}"
        '[data-testid="stFileUploaderDropzoneInstructions"] span{display:none}'
        '[data-testid="stFileUploaderDropzoneInstructions"] > div::after'
        f"{{content:{css_text('common.upload_drop')};font-size:14px;opacity:.6}}"
        + "".join(
            f'[data-testid="stDateInput"] [data-placeholder="true"][data-type="{part}"]{{font-size:0}}'
            f'[data-testid="stDateInput"] [data-placeholder="true"][data-type="{part}"]::after'
            f"{{content:{css_text(f'common.date_{part}')};font-size:14px}}"
            for part in ("year", "month", "day"))
        + "</style>")

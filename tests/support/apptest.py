"""AppTest on the console's entry script."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "console" / "app.py")


def run_app(page: str | None = None, timeout: float = 30) -> AppTest:
    """Run the console as the user `as_user` set; `page` is a path under pages/,
    e.g. "stores.py"."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    if page:
        at.switch_page(f"../pages/{page}")
        at.run()
    return at

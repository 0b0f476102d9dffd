"""Every export is named in Chinese after its page and the filters applied, and its
workbook carries those filters on a 筛选条件 sheet (the funnel's own exports are
checked in test_funnel.py)."""

import io

import openpyxl
import pytest
from streamlit.delta_generator import DeltaGenerator

from base.timeutil import format_display, utcnow
from db.models import Role
from i18n import t
from tests.support.apptest import run_app
from tests.support.factories import bind


@pytest.fixture
def downloads(monkeypatch) -> dict[str, bytes]:
    captured: dict[str, bytes] = {}
    real = DeltaGenerator.download_button

    def capture(self, label, data, file_name=None, *args, **kwargs):
        captured[file_name] = data() if callable(data) else data  # made when clicked
        return real(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", capture)
    return captured


def filters_sheet(data: bytes) -> dict[str, str]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames[1] == t("common.export.filters")
    return dict(book[t("common.export.filters")].iter_rows(values_only=True))


def test_bindings_export_is_named_after_the_page_and_filters(org, session, make_user, as_user, downloads):
    bind(session, "000101", "store101", name="一号店")
    session.commit()
    as_user(make_user(Role.hq_operator))
    at = run_app("bindings.py")
    at.selectbox(key="review_branch").set_value(org["north"].id)
    at.text_input(key="review_search").input("0001")
    at.run()
    at.toggle(key="review_export").set_value(True).run()
    assert not at.exception, at.exception
    today = format_display(utcnow(), "%Y%m%d")
    # Filters left at 全部 are on the sheet only.
    name = f"绑定审核_BJ01-北京分公司_0001_{today}"
    assert {f"{name}.xlsx", f"{name}.csv"} <= set(downloads)
    notes = filters_sheet(downloads[f"{name}.xlsx"])
    assert notes[t("common.export.table")] == t("bindings.title")
    assert notes[t("bindings.filter.branch")] == "BJ01 北京分公司"
    assert notes[t("common.export.search")] == "0001"


def test_stores_export_is_named_after_the_page_and_filters(org, make_user, as_user, downloads):
    as_user(make_user(Role.hq_operator))
    at = run_app("stores.py")
    at.selectbox(key="stores_status").set_value("open")
    at.run()
    at.toggle(key="stores_export").set_value(True).run()
    assert not at.exception, at.exception
    today = format_display(utcnow(), "%Y%m%d")
    name = f"门店_{t('store_status.open')}_{today}"
    assert f"{name}.xlsx" in downloads
    assert filters_sheet(downloads[f"{name}.xlsx"])[t("stores.filter.status")] == t("store_status.open")
    assert f"门店-{t('stores.tab.branches')}_{today}.csv" in downloads

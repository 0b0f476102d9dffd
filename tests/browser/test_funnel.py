"""In Chromium: an HQ operator opens 导流效果, the Altair charts render, and the
per-branch export downloads as xlsx and as CSV (utf-8-sig, formulas neutralised)."""

import io
import re

import openpyxl
import pytest

from db.models import Role
from i18n import t
from tests.support import metrics_scenario as sc
from tests.support.streamlit_server import log_in, wait_for_app_run

pytestmark = pytest.mark.browser


def test_funnel_page_charts_and_exports(session, make_user, console_server, browser):
    world = sc.load(session)
    world["south"].name = "=上海分公司"  # must not run as a formula in Excel
    session.add(world["south"])
    session.commit()
    operator = make_user(Role.hq_operator, username="operator")
    page = browser.new_page(locale="zh-CN", accept_downloads=True)
    try:
        log_in(page, console_server.url, "operator", operator.password)
        page.goto(f"{console_server.url}/funnel")
        wait_for_app_run(page)
        page.get_by_role("heading", name=t("funnel.title")).wait_for()
        charts = page.locator("[data-testid='stVegaLiteChart']")
        charts.first.wait_for()
        assert charts.count() == 2
        page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").first.wait_for()

        with page.expect_download() as xlsx_info:
            page.get_by_role("button", name=t("common.download_xlsx")).first.click()
        download = xlsx_info.value
        # Named after the page, the table and the range; filters left at "all" are not in the name.
        assert re.fullmatch(rf"{t('funnel.title')}_{t('funnel.branches')}_\d{{4}}-\d\d-\d\d至\d{{4}}-\d\d-\d\d\.xlsx",
                            download.suggested_filename), download.suggested_filename
        sheet = openpyxl.load_workbook(io.BytesIO(open(download.path(), "rb").read())).active
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0][0] == t("funnel.col.branch_code")
        assert [r[0] for r in rows[1:]] == ["BJ01", "SH01", t("funnel.total")]
        assert rows[2][1] == "'=上海分公司"

        with page.expect_download() as csv_info:
            page.get_by_role("button", name=t("common.download_csv")).first.click()
        data = open(csv_info.value.path(), "rb").read()
        assert data.startswith(b"\xef\xbb\xbf")
        assert "'=上海分公司" in data.decode("utf-8-sig")
    finally:
        page.close()

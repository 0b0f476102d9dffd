"""In Chromium: a branch manager uploads a GBK CSV through the real file
chooser, sees the preview and commits; the binding waits for review, hidden."""

import pytest
from sqlmodel import select

from core.bindings import service as bindings
from db.models import Role, Store
from i18n import t
from tests.support.binding_sheets import csv_bytes
from tests.support.streamlit_server import log_in, wait_for_app_run

pytestmark = pytest.mark.browser


def test_manager_uploads_through_the_file_chooser_and_commits(org, make_user, console_server, browser, tmp_path,
                                                              session):
    manager = make_user(Role.branch_manager, org["north"], username="bj_manager")
    sheet = tmp_path / "北京绑定表.csv"
    sheet.write_bytes(csv_bytes([["BJ01", "000101", "北京朝阳大悦城店", "zhang.san", "张三"],
                                 ["BJ01", "101", "北京东城王府井店", "li.si", "李四"]], encoding="gbk"))
    page = browser.new_page(locale="zh-CN")
    try:
        log_in(page, console_server.url, "bj_manager", manager.password)
        page.get_by_text(t("binding_import.upload_title")).first.click()
        wait_for_app_run(page)
        page.get_by_role("heading", name=t("binding_import.upload_title")).wait_for()

        with page.expect_file_chooser() as chooser:
            page.locator("[data-testid='stFileUploaderDropzone'] button").first.click()
        chooser.value.set_files(str(sheet))
        page.get_by_text(t("binding_import.commit")).wait_for(timeout=30_000)
        wait_for_app_run(page)
        new_metric = page.locator("[data-testid='stMetric']").filter(has_text=t("binding_import.count.new"))
        assert new_metric.locator("[data-testid='stMetricValue']").inner_text().strip() == "2"

        page.get_by_role("button", name=t("binding_import.commit")).click()
        page.get_by_text(t("binding_import.committed", new=2, changed=0, unchanged=0, accounts=2)).wait_for(
            timeout=30_000)
    finally:
        page.close()
    session.expire_all()
    store = session.exec(select(Store).where(Store.crm_store_id == "000101")).one()
    binding = bindings.current_for_store(session=session, store_id=store.id)
    assert binding is not None and binding.shown is False and binding.reviewed_at is None

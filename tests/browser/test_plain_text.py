"""In Chromium: names from other people's data (a CRM store name, an account name,
a branch name) are shown as the text they are — no image is loaded from the host
they name, no link is made — on the bindings page's heading and confirmation, the
accounts page's heading and the upload page's branch notice."""

import pytest

from db.models import Role
from i18n import t
from tests.support.factories import bind, find_store
from tests.support.streamlit_server import log_in, tick_first_row, wait_for_app_run

pytestmark = pytest.mark.browser

HOSTILE = "![x](http://127.0.0.1:9/p.png)[点我](http://evil.example/) **粗** <b>h</b>"
# As shown: an invisible word joiner keeps "://" from being read as a link.
SHOWN = HOSTILE.replace("://", ":\u2060//")


def no_markup_from_data(page) -> None:
    assert page.locator("img[src*='p.png']").count() == 0
    assert page.locator("a[href*='evil.example']").count() == 0
    assert page.locator("strong", has_text="粗").count() == 0
    page.get_by_text(SHOWN).first.wait_for()


def test_names_from_data_are_plain_text(session, org, make_user, console_server, browser):
    operator = make_user(Role.hq_operator, username="operator")
    manager = make_user(Role.branch_manager, org["south"], username="manager")
    store = find_store(session, "000101")
    store.name = HOSTILE
    org["south"].name = HOSTILE
    session.add_all([store, org["south"]])
    bind(session, "000101", "acc1", name=HOSTILE)
    session.commit()

    page = browser.new_page(locale="zh-CN", viewport={"width": 1440, "height": 900})
    try:
        log_in(page, console_server.url, "operator", operator.password)
        page.goto(f"{console_server.url}/bindings")
        wait_for_app_run(page)
        tick_first_row(page, page.get_by_role("heading", name=t("bindings.row_title", store="000101", name=SHOWN)))
        no_markup_from_data(page)
        page.get_by_role("button", name=t("bindings.show_selected")).click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text(t("bindings.confirm_stores", stores=f"000101 {SHOWN}")).wait_for()
        no_markup_from_data(page)

        page.goto(f"{console_server.url}/accounts")
        wait_for_app_run(page)
        tick_first_row(page, page.get_by_role("heading", name=t("accounts.edit_title", userid="acc1", name=SHOWN)))
        no_markup_from_data(page)
    finally:
        page.close()

    page = browser.new_page(locale="zh-CN", viewport={"width": 1440, "height": 900})
    try:
        log_in(page, console_server.url, "manager", manager.password)
        page.goto(f"{console_server.url}/binding-upload")
        wait_for_app_run(page)
        page.get_by_text(t("binding_import.branch_fixed", branch=f"SH01 {SHOWN}")).wait_for()
        no_markup_from_data(page)
    finally:
        page.close()

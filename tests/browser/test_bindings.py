"""In Chromium: an HQ operator finds a pending store on 绑定审核, shows its entry
through the confirmation dialog, and the client API then answers visible: true;
ticks in the grid stay on the rows the operator saw."""

import httpx
import pytest
from sqlmodel import Session

from core.auth import api_keys
from core.auth.permissions import system_actor
from core.bindings import review
from db.engine import get_engine
from db.models import Binding, Role
from i18n import t
from tests.support.factories import bind, find_store, give_code
from tests.support.streamlit_server import log_in, tick_first_row, wait_for_app_run

pytestmark = pytest.mark.browser


def test_operator_shows_an_entry_and_the_api_agrees(session, org, make_user, console_server, browser):
    operator = make_user(Role.hq_operator, username="operator")
    bind(session, "000101", "acc1")
    bind(session, "000102", "acc2")
    _row, key = api_keys.create_api_key(session=session, actor=system_actor("test"), name="App")
    session.commit()
    entry_url = f"{console_server.url}/api/v1/stores/000101/entry"
    before = httpx.get(entry_url, headers={"X-API-Key": key}).json()
    assert before["visible"] is False and before["reason"] == "hidden"

    page = browser.new_page(locale="zh-CN")
    try:
        log_in(page, console_server.url, "operator", operator.password)
        page.goto(f"{console_server.url}/bindings")
        wait_for_app_run(page)
        page.get_by_role("heading", name=t("bindings.title")).wait_for()

        search = page.get_by_label(t("bindings.search"))
        search.fill("000101")
        search.press("Enter")
        wait_for_app_run(page)
        page.get_by_text(t("common.page_of", page=1, pages=1, total=1)).wait_for()
        page.get_by_text(t("bindings.all_matching", total=1)).click()
        wait_for_app_run(page)
        page.get_by_role("button", name=t("bindings.show_selected")).click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text(t("bindings.confirm_show", selected=1, changing=1)).wait_for()
        dialog.get_by_role("button", name=t("common.confirm")).click()
        page.get_by_text(t("bindings.done_show", changed=1, unchanged=0)).wait_for()
    finally:
        page.close()

    after = httpx.get(entry_url, headers={"X-API-Key": key}).json()
    assert after == {"crm_store_id": "000101", "visible": True, "wecom_userid": "acc1", "wecom_name": "acc1客服",
                     "qr_code": give_code(session, find_store(session, "000101"), "acc1").qr_code,
                     "contact_link": None}
    other = httpx.get(f"{console_server.url}/api/v1/stores/000102/entry", headers={"X-API-Key": key}).json()
    assert other["visible"] is False


def test_ticks_act_on_the_rows_the_operator_saw(session, org, make_user, console_server, browser):
    """In Chromium: ticking a row in the grid opens that store's panel; when
    another operator changes the ticked row, 显示入口 does nothing, names the
    store and clears the tick (the ticks never slide onto another row)."""
    operator = make_user(Role.hq_operator, username="operator")
    other = make_user(Role.hq_admin)
    first = bind(session, "000101", "acc1")
    second = bind(session, "000102", "acc2")
    page = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    try:
        log_in(page, console_server.url, "operator", operator.password)
        page.goto(f"{console_server.url}/bindings")
        wait_for_app_run(page)
        page.get_by_text(t("common.page_of", page=1, pages=1, total=2)).wait_for()
        heading = t("bindings.row_title", store="000101", name="北京朝阳大悦城店")
        tick_first_row(page, page.get_by_role("heading", name=heading))
        page.get_by_text(t("bindings.selected", count=1)).wait_for()

        with Session(get_engine()) as elsewhere:
            review.set_shown(session=elsewhere, actor=other.actor, versions={first.id: 1}, shown=True)
            elsewhere.commit()
        page.get_by_role("button", name=t("bindings.show_selected")).click()
        wait_for_app_run(page)
        page.get_by_text(t("bindings.selection_changed", count=1, stores="000101 北京朝阳大悦城店")).wait_for()
        page.get_by_text(t("bindings.selected", count=0)).wait_for()
        assert page.get_by_role("dialog").count() == 0
    finally:
        page.close()
    session.expire_all()
    assert session.get(Binding, second.id).shown is False

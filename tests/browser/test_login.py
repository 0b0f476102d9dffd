"""In Chromium: log in as hq_operator, see the overview, refresh (still logged
in), log out (the session is gone: a page opens the login form)."""

import pytest

from db.models import Role
from i18n import t
from tests.support.streamlit_server import log_in, wait_for_app_run

pytestmark = pytest.mark.browser


def test_operator_logs_in_refreshes_and_logs_out(org, make_user, console_server, browser):
    operator = make_user(Role.hq_operator, username="operator")
    page = browser.new_page(locale="zh-CN")
    try:
        page.goto(f"{console_server.url}/")
        page.wait_for_url(f"{console_server.url}/login")

        page.fill("#username", "operator")
        page.fill("#password", "wrong-password")
        page.click("button[type=submit]")
        page.get_by_text(t("login.bad_credentials")).wait_for()

        log_in(page, console_server.url, "operator", operator.password)
        page.get_by_role("heading", name=t("overview.title")).wait_for()
        assert page.get_by_text(t("users.title")).count() == 0  # not an admin page for an operator

        page.reload()
        wait_for_app_run(page)
        page.get_by_role("heading", name=t("overview.title")).wait_for()

        page.get_by_text(t("logout.link")).click()
        page.wait_for_url("**/login?bye=1")
        page.get_by_text(t("login.logged_out")).wait_for()

        page.goto(f"{console_server.url}/")
        page.wait_for_url(f"{console_server.url}/login")
        page.get_by_role("button", name=t("login.submit")).wait_for()
    finally:
        page.close()

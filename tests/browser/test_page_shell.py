"""In Chromium: what every page is served as — Chinese (`lang="zh-CN"`, so CJK fonts draw
Simplified forms), its tab icon from our own server, only after login (a bookmark goes to
/login and comes back), and a page the role may not use says so in Chinese."""

from urllib.parse import urlsplit

import httpx
import pytest

from db.models import Role
from i18n import t
from tests.support.streamlit_server import wait_for_app_run

pytestmark = pytest.mark.browser


def submit_login(page, username: str, password: str) -> None:
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")


def test_bookmark_goes_to_login_and_comes_back_in_chinese(org, make_user, console_server, browser):
    operator = make_user(Role.hq_operator, username="operator")
    base = console_server.url
    answer = httpx.get(f"{base}/funnel?range=7", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Ffunnel%3Frange%3D7"
    # Not an open redirect: a foreign target falls back to the start page.
    assert 'name="next" value="/"' in httpx.get(f"{base}/login?next=//evil.example/").text

    page = browser.new_page(locale="zh-CN", viewport={"width": 1440, "height": 900})
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url)
            if urlsplit(request.url).hostname not in ("127.0.0.1", None) else None)
    try:
        page.goto(f"{base}/overview")
        assert urlsplit(page.url).path == "/login"
        submit_login(page, "operator", operator.password)
        page.wait_for_url(f"{base}/overview")
        wait_for_app_run(page)
        page.get_by_role("heading", name=t("overview.title")).wait_for()
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        assert page.title() == t("app.title") or t("overview.title") in page.title()
        icon = page.evaluate("document.querySelector(\"link[rel='shortcut icon']\").href")
        assert icon.startswith(base), icon
        assert page.get_by_text("Page not found").count() == 0

        page.get_by_text(t("logout.link")).click()
        page.wait_for_url("**/login?bye=1")
        page.goto(f"{base}/stores")
        page.wait_for_url(f"{base}/login?next=%2Fstores")
        submit_login(page, "operator", operator.password)
        page.wait_for_url(f"{base}/stores")
        wait_for_app_run(page)
        page.get_by_role("heading", name=t("stores.title")).wait_for()
        assert outside == []
    finally:
        page.close()


def test_a_page_the_role_may_not_use_names_the_role(org, make_user, console_server, browser):
    viewer = make_user(Role.viewer, username="viewer")
    page = browser.new_page(locale="zh-CN", viewport={"width": 1440, "height": 900})
    try:
        page.goto(f"{console_server.url}/audit")
        submit_login(page, "viewer", viewer.password)
        page.wait_for_url(f"{console_server.url}/audit")
        wait_for_app_run(page)
        page.get_by_role("heading", name=t("nav.forbidden_title")).wait_for()
        page.get_by_text(t("nav.forbidden", page=t("audit.title"), role=t("role.viewer"))).wait_for()
        assert page.get_by_text("Page not found").count() == 0
        assert page.get_by_role("heading", name=t("audit.title")).count() == 0
    finally:
        page.close()


def test_the_file_uploader_speaks_chinese(org, make_user, console_server, browser):
    admin = make_user(Role.hq_admin, username="admin")
    page = browser.new_page(locale="zh-CN", viewport={"width": 1440, "height": 900})
    try:
        page.goto(f"{console_server.url}/stores")
        submit_login(page, "admin", admin.password)
        page.wait_for_url(f"{console_server.url}/stores")
        wait_for_app_run(page)
        page.get_by_text(t("stores.import")).first.click()
        dropzone = page.locator("[data-testid=stFileUploaderDropzone]")
        dropzone.wait_for()
        assert not dropzone.get_by_text("Upload", exact=True).and_(dropzone.locator("p")).is_visible()
        assert not dropzone.get_by_text("per file").is_visible()
        shown = dropzone.evaluate("""zone => [
            getComputedStyle(zone.querySelector('button [data-testid=stMarkdownContainer]'), '::after').content,
            getComputedStyle(zone.querySelector('[data-testid=stFileUploaderDropzoneInstructions] > div'),
                             '::after').content]""")
        assert shown == [f'"{t("common.upload_button")}"', f'"{t("common.upload_drop")}"']
    finally:
        page.close()

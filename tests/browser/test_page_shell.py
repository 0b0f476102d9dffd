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


def test_an_address_that_is_no_page_says_so_in_chinese(org, make_user, console_server, browser):
    base = console_server.url
    for path in ("/foo", "/overview/x", "/index.html"):
        answer = httpx.get(f"{base}{path}", follow_redirects=False)
        assert answer.status_code == 404, path
        assert 'lang="zh-CN"' in answer.text and t("nav.not_found_title") in answer.text
    # What Streamlit and our routes serve is untouched.
    assert httpx.get(f"{base}/_stcore/health").status_code == 200
    assert httpx.get(f"{base}/favicon.png").status_code == 200
    assert httpx.get(f"{base}/login").status_code == 200
    assert httpx.get(f"{base}/healthz").status_code == 200

    operator = make_user(Role.hq_operator, username="operator")
    page = browser.new_page(locale="zh-CN", viewport={"width": 1440, "height": 900})
    try:
        page.goto(f"{base}/overview")
        submit_login(page, "operator", operator.password)
        page.wait_for_url(f"{base}/overview")
        page.goto(f"{base}/no-such-page")
        page.get_by_role("heading", name=t("nav.not_found_title")).wait_for()
        assert page.get_by_text("Page not found").count() == 0
        page.get_by_role("link", name=t("nav.not_found_home")).click()
        page.wait_for_url(f"{base}/overview")
    finally:
        page.close()


def test_an_open_page_whose_session_ended_leads_back_to_it_through_login(org, make_user, console_server, browser,
                                                                           session):
    operator = make_user(Role.hq_operator, username="operator")
    base = console_server.url
    page = browser.new_page(locale="zh-CN", viewport={"width": 1440, "height": 900})
    try:
        page.goto(f"{base}/overview")
        submit_login(page, "operator", operator.password)
        page.wait_for_url(f"{base}/overview")
        wait_for_app_run(page)
        operator.user.disabled = True
        session.add(operator.user)
        session.commit()
        # Switching pages in the menu reruns the app over the open connection, without a page load.
        page.get_by_role("link", name=t("stores.title")).click()
        page.get_by_text(t("login.session_ended")).wait_for()
        wait_for_app_run(page)
        assert page.get_by_role("heading", name=t("stores.title"), exact=True).count() == 0
        link = page.get_by_role("link", name=t("login.go_to_login"))
        assert link.get_attribute("href") == "/login?next=%2Fstores"
        operator.user.disabled = False
        session.add(operator.user)
        session.commit()
        link.click()
        page.wait_for_url("**/login?next=%2Fstores")
        submit_login(page, "operator", operator.password)
        page.wait_for_url(f"{base}/stores")
        wait_for_app_run(page)
        page.get_by_role("heading", name=t("stores.title")).wait_for()
    finally:
        page.close()


def test_an_empty_date_field_shows_chinese_placeholders(org, make_user, console_server, browser):
    admin = make_user(Role.hq_admin, username="admin")
    page = browser.new_page(locale="zh-CN", viewport={"width": 1440, "height": 900})
    try:
        page.goto(f"{console_server.url}/audit")
        submit_login(page, "admin", admin.password)
        page.wait_for_url(f"{console_server.url}/audit")
        wait_for_app_run(page)
        field = page.locator("[data-testid=stDateInput]").first
        field.wait_for()
        shown = field.evaluate("""field => ['year', 'month', 'day'].map(part => {
            const segment = field.querySelector(`[data-type=${part}]`);
            return [getComputedStyle(segment).fontSize, getComputedStyle(segment, '::after').content]; })""")
        assert shown == [["0px", f'"{t("common.date_year")}"'], ["0px", f'"{t("common.date_month")}"'],
                         ["0px", f'"{t("common.date_day")}"']]
    finally:
        page.close()

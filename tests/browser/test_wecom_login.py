"""In Chromium, against the WeCom simulator: "企业微信扫码登录" → the simulator's
QR login page → confirm as the linked branch manager → signed in with that role's
menu; a replayed callback and an unlinked member each refused with their sentence
and no session; and the branch manager's pages usable at phone width."""

import os
from pathlib import Path

import pytest
from sqlmodel import select

from core.bindings.imports import commit, judge, read
from db.models import Account, LoginSession, Role
from i18n import t
from tests.support.binding_sheets import csv_bytes
from tests.support.capacity import start_simulator
from tests.support.streamlit_server import StreamlitServer, wait_for_app_run
from tests.support.wecom_login import wecom_login_env

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
# The pages a branch manager uses on the phone, by URL path and title key.
PHONE_PAGES = [("", "overview.title"), ("stores", "stores.title"), ("capacity", "capacity.title"),
               ("import-history", "binding_import.history_title")]


@pytest.fixture
def wecom_console(db_url: str, tmp_path: Path):
    """A running console whose self-built app is a simulator with two members."""
    sim = start_simulator()
    sim.set_members({"WangJL": {"name": "王经理"}, "stranger": {"name": "路人"}})
    server = StreamlitServer({"DATABASE_URL": db_url, "CONSOLE_SECRET_KEY": os.environ["CONSOLE_SECRET_KEY"],
                              "SWC_TEST_LOG_DIR": str(tmp_path)})
    server.env.update(wecom_login_env(sim, server.url))
    server.start()
    yield server
    server.stop()
    sim.stop()


def scan_as(page, console_url: str, label: str) -> None:
    """From /login, "scan" on the simulator's QR login page as the member shown as `label`."""
    page.goto(f"{console_url}/login")
    page.get_by_role("link", name=t("login.wecom_button")).click()
    page.get_by_role("heading", name="企业微信扫码登录（模拟）").wait_for()
    page.get_by_role("link", name=label).click()


def test_branch_manager_scans_in_and_replays_and_strangers_are_refused(org, make_user, session, wecom_console,
                                                                      browser, tmp_path):
    make_user(Role.branch_manager, org["north"], username="bj_manager", wecom_userid="WangJL")
    page = browser.new_page(locale="zh-CN")
    callbacks: list[str] = []
    page.on("request", lambda request: callbacks.append(request.url) if "/login/wecom/callback" in request.url
            else None)
    try:
        scan_as(page, wecom_console.url, "以 王经理（WangJL）扫码确认")
        page.wait_for_url(f"{wecom_console.url}/**")
        wait_for_app_run(page)
        page.get_by_role("heading", name=t("overview.title")).wait_for()
        page.get_by_text(t("nav.signed_in_as", name="bj_manager", role=t("role.branch_manager"))).wait_for()
        page.get_by_text(t("binding_import.upload_title")).first.wait_for()  # a branch manager uploads sheets
        assert page.get_by_text(t("alerts.title")).count() == 0  # HQ pages are not in the menu
        assert page.get_by_text(t("users.title")).count() == 0
        [callback] = callbacks

        # The same callback URL again, in a fresh browser that never started this login.
        replay = browser.new_page(locale="zh-CN")
        try:
            replay.goto(callback)
            replay.get_by_text(t("login.wecom_state_forged")).wait_for()
        finally:
            replay.close()
        # And in the same browser, after the login it completed (the back button, say).
        page.goto(callback)
        page.get_by_role("alert").filter(has_text=t("login.wecom_state_used")).wait_for()
        assert len(session.exec(select(LoginSession)).all()) == 1

        stranger = browser.new_page(locale="zh-CN")
        try:
            scan_as(stranger, wecom_console.url, "以 路人（stranger）扫码确认")
            stranger.get_by_text(t("login.wecom_not_linked", userid="stranger")).wait_for()
        finally:
            stranger.close()
        session.expire_all()
        assert len(session.exec(select(LoginSession)).all()) == 1
    finally:
        page.close()


def test_branch_manager_pages_fit_a_phone(org, make_user, session, wecom_console, browser, tmp_path):
    manager = make_user(Role.branch_manager, org["north"], username="bj_manager", wecom_userid="WangJL")
    parsed = read.parse_sheet(csv_bytes([["BJ01", "000101", "北京朝阳大悦城店", "bj_chaoyang_kefu01", "朝阳店客服"],
                                         ["BJ01", "000102", "北京海淀银泰店", "bj_haidian_kefu01", "海淀店客服"],
                                         ["BJ01", "101", "北京东城王府井店", "bj_wangfujing_kefu", "王府井店客服"]]),
                              "北京分公司绑定表.csv")
    commit.commit(session=session, actor=manager.actor,
                  preview=judge.preview(session=session, actor=manager.actor, parsed=parsed), confirm_warnings=True)
    session.commit()
    for account in session.exec(select(Account)).all():
        account.customer_count = 4_700 if account.userid == "bj_chaoyang_kefu01" else 1_200
        session.add(account)
    session.commit()
    context = browser.new_context(locale="zh-CN", viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    try:
        scan_as(page, wecom_console.url, "以 王经理（WangJL）扫码确认")
        page.wait_for_url(f"{wecom_console.url}/**")
        wait_for_app_run(page)
        for url_path, title_key in PHONE_PAGES:
            page.set_viewport_size(PHONE)
            page.goto(f"{wecom_console.url}/{url_path}")
            wait_for_app_run(page)
            page.get_by_role("heading", name=t(title_key)).wait_for()
            # Nothing pushes the page sideways: wide tables scroll inside themselves.
            overflow = page.evaluate("""() => Math.max(...[document.documentElement,
                ...document.querySelectorAll("[data-testid='stMain'], [data-testid='stMainBlockContainer']")]
                .map(e => e.scrollWidth - e.clientWidth))""")
            assert overflow <= 1, (url_path, overflow)
            # The whole page in one picture, for a person to look at.
            height = page.evaluate("document.querySelector(\"[data-testid='stMain']\").scrollHeight")
            page.set_viewport_size({"width": PHONE["width"], "height": max(PHONE["height"], height)})
            page.screenshot(path=str(tmp_path / f"phone-{url_path or 'overview'}.png"))
    finally:
        context.close()

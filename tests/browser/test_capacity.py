"""In Chromium, demo mode: the console says the simulator is in use, the 告警
page shows the alert and the robot inbox with the seed's wording, and 容量监控
shows the account's gauge."""

import pytest

from core.alerts.outbox import deliver_due
from core.capacity.evaluate import evaluate
from db.models import AlertChannel, Role
from i18n import t
from tests.support.capacity import bind_accounts, start_simulator
from tests.support.streamlit_server import log_in, wait_for_app_run

pytestmark = pytest.mark.browser
SEED_SENTENCE = "北京朝阳大悦城店客服(账号:store000101)客户容量已达到70%,请及时处理。"


@pytest.fixture
def sim(monkeypatch):
    simulator = start_simulator()
    monkeypatch.setenv("WECOM_API_BASE", simulator.base_url)
    yield simulator
    simulator.stop()


def test_operator_sees_the_alert_and_the_robot_inbox(sim, org, session, engine, make_user, console_server, browser):
    bind_accounts(session, [("000101", "store000101", 3550, 5000)])
    session.add(AlertChannel(name="总部群", kind="wecom", url=f"{sim.base_url}/cgi-bin/webhook/send?key=hq"))
    session.commit()
    evaluate(session=session)
    session.commit()
    assert deliver_due(engine=engine).sent == 1
    operator = make_user(Role.hq_operator)
    page = browser.new_page(locale="zh-CN")
    try:
        log_in(page, console_server.url, operator.user.username, operator.password)
        page.goto(f"{console_server.url}/alerts")
        wait_for_app_run(page)
        page.get_by_role("heading", name=t("alerts.title")).wait_for()
        page.get_by_text(t("app.simulator_banner", base=sim.base_url)).wait_for()
        page.get_by_role("heading", name=t("alerts.inbox")).wait_for()
        # The inbox table holds the message the robot received.
        grid_text = page.locator("[data-testid='stDataFrame']").last
        grid_text.wait_for()
        assert [m.text.splitlines()[0] for m in sim.messages()] == [SEED_SENTENCE]

        page.goto(f"{console_server.url}/capacity")
        wait_for_app_run(page)
        page.get_by_role("heading", name=t("capacity.title")).wait_for()
        page.get_by_text("store000101", exact=False).first.wait_for()
        page.screenshot(path=str(console_server.log_path.parent / "capacity.png"), full_page=True)
    finally:
        page.close()

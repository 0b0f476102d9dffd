"""告警设置 and 告警 with WeCom app-message channels, through AppTest: adding one,
its recipients and invalid members in the channel list, its test message; a
member_left alert shown without a percentage."""

import pytest
from sqlmodel import select

from base.config import get_settings
from base.timeutil import utcnow
from console.ui.text import md
from core.wecom.client import forget_tokens
from db.models import AlertChannel, AlertLevel, CapacityAlert, ChannelInvalidUser, Role
from i18n import t
from tests.support.apptest import run_app
from tests.support.capacity import start_simulator
from tests.support.factories import make_account


@pytest.fixture
def sim(monkeypatch):
    simulator = start_simulator()
    simulator.set_members({"ops.lead": {"name": "运营主管"}, "mgr.north": {"name": "北区经理"}})
    for key, value in {"WECOM_API_BASE": simulator.base_url, "WECOM_CORP_ID": simulator.corp_id,
                       "WECOM_SECRET": simulator.secret, "WECOM_AGENT_ID": simulator.agent_id}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    forget_tokens()
    yield simulator
    simulator.stop()


def channel_table(at):
    return next(frame.value for frame in at.dataframe if t("alert_settings.ch.recipients") in frame.value.columns)


def test_operator_adds_an_app_channel_and_sees_its_recipients_and_invalid_members(
        org, sim, session, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    at = run_app("alert_settings.py")
    at.text_input(key="app_channel_name").input("北区经理")
    at.text_input(key="app_channel_members").input("ops.lead|ghost")
    at.selectbox(key="app_channel_branch").set_value(org["north"].code)
    next(b for b in at.button if b.label == t("alert_settings.add") and "app_channel_add" in b.form_id).click()
    at.run()
    assert not at.exception, at.exception
    channel = session.exec(select(AlertChannel)).one()
    assert (channel.kind, channel.recipients, channel.to_branch_managers, channel.branch_id) == (
        "wecom_app", "ops.lead|ghost", True, org["north"].id)
    row = channel_table(at).iloc[0]
    assert row[t("alert_settings.ch.kind")] == "企业微信应用消息"
    assert row[t("alert_settings.ch.recipients")] == "ops.lead, ghost + 告警所属分公司的经理"

    make_user(Role.branch_manager, org["north"], wecom_userid="mgr.north")
    at.selectbox(key="channel_chosen").set_value(channel.id)
    next(b for b in at.button if b.label == t("alert_settings.send_test")).click()
    at.run()
    assert not at.exception, at.exception
    assert at.warning[0].value == t("alert_settings.test_partly", members="ghost")
    assert sorted(m.userid for m in sim.app_messages()) == ["mgr.north", "ops.lead"]
    assert [r.userid for r in session.exec(select(ChannelInvalidUser)).all()] == ["ghost"]
    at.run()
    assert channel_table(at).iloc[0][t("alert_settings.ch.invalid_users")] == "无效成员: ghost"


def test_an_app_channel_without_recipients_is_refused_with_the_reason(org, sim, session, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    at = run_app("alert_settings.py")
    at.checkbox(key="app_channel_managers").uncheck()
    next(b for b in at.button if b.label == t("alert_settings.add") and "app_channel_add" in b.form_id).click()
    at.run()
    assert at.error[0].value == t("alerts.channel.no_recipients")
    assert session.exec(select(AlertChannel)).all() == []


def test_a_member_left_alert_is_listed_without_a_percentage(org, session, make_user, as_user):
    account = make_account(session, "gone.member")
    now = utcnow()
    session.add(CapacityAlert(account_id=account.id, level=AlertLevel.member_left, level_pct=0,
                              branch_id=org["north"].id, customer_count=0, capacity_limit=5000,
                              opened_at=now, closed_at=now))
    session.commit()
    as_user(make_user(Role.hq_operator))
    at = run_app("alerts.py")
    at.segmented_control(key="alerts_status").set_value("all")
    at.run()
    assert not at.exception, at.exception
    assert list(at.dataframe[0].value[t("alerts.col.level")]) == ["成员离职/停用"]


def test_the_demo_alerts_page_shows_the_app_messages_each_member_received(org, sim, session, make_user, as_user):
    from core.alerts import channels as channel_service

    operator = make_user(Role.hq_operator)
    channel = channel_service.add_channel(session=session, actor=operator.actor, kind="wecom_app", members="ops.lead")
    session.commit()
    channel_service.send_test(session=session, actor=operator.actor, channel_id=channel.id)
    session.commit()
    as_user(operator)
    at = run_app("alerts.py")
    assert not at.exception, at.exception
    assert any(md("alerts.app_inbox.member", userid="ops.lead", count=1) == m.value for m in at.markdown)
    [card] = [frame.value for frame in at.dataframe if t("alerts.app_inbox.col.title") in frame.value.columns]
    assert list(card[t("alerts.app_inbox.col.title")]) == ["告警渠道测试"]

    # An agency operator of one branch sees only the app messages of its own channels: none here.
    as_user(make_user(Role.hq_operator, org["north"]))
    at = run_app("alerts.py")
    assert not at.exception, at.exception
    assert not any("ops.lead" in m.value for m in at.markdown)

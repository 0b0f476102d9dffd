"""The console is not a proxy into the internal network: a robot only on its
platform's official host, a generic webhook only to public addresses and only
added by HQ's administrator; loopback, private and link-local addresses refused
when saved and again when sending (the robot hears nothing), unless the host is
one of ALERT_ALLOWED_HOSTS."""

import pytest
from sqlmodel import select

from base.config import get_settings
from base.errors import InvalidInput, PermissionDenied
from console.cli import main as cli
from core.alerts import channels as channel_service
from core.alerts.outbox import deliver_due, enqueue
from db.models import AlertChannel, AlertDelivery, Role
from tests.support.capacity import start_simulator
from tests.support.problems import shown


@pytest.fixture
def no_allowed_hosts(monkeypatch):
    monkeypatch.setenv("ALERT_ALLOWED_HOSTS", "")
    get_settings.cache_clear()


def refused(session, actor, kind, url) -> str:
    with pytest.raises(InvalidInput) as error:
        channel_service.add_channel(session=session, actor=actor, kind=kind, url=url)
    return error.value.key


def test_robots_only_on_their_official_host(session, make_user, no_allowed_hosts):
    operator = make_user(Role.hq_operator).actor
    assert refused(session, operator, "wecom", "http://127.0.0.1:22/cgi-bin/webhook/send?key=k") \
        == "alerts.channel.not_official_host"
    assert refused(session, operator, "dingtalk", "https://oapi.dingtalk.com.evil.example/robot/send?access_token=t") \
        == "alerts.channel.not_official_host"
    assert refused(session, operator, "feishu", "http://10.0.0.8/open-apis/bot/v2/hook/x") \
        == "alerts.channel.not_official_host"
    for kind, url in (("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"),
                      ("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=t"),
                      ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/x"),
                      ("feishu", "https://open.larksuite.com/open-apis/bot/v2/hook/x")):
        channel_service.add_channel(session=session, actor=operator, kind=kind, url=url)


def test_generic_webhooks_only_by_the_admin_and_never_to_internal_addresses(session, make_user, no_allowed_hosts):
    with pytest.raises(PermissionDenied) as error:
        channel_service.add_channel(session=session, actor=make_user(Role.hq_operator).actor, kind="webhook",
                                    url="https://hooks.example.com/alerts")
    assert error.value.key == "alerts.channel.webhook_admin_only"
    admin = make_user(Role.hq_admin).actor
    for url in ("http://127.0.0.1:22/", "http://localhost:6379/", "http://10.1.2.3/hook", "http://192.168.0.1/",
                "http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/", "http://[::ffff:127.0.0.1]/",
                "http://0.0.0.0:8501/", "http://2130706433/"):
        assert refused(session, admin, "webhook", url) == "alerts.channel.internal_address", url
    assert session.exec(select(AlertChannel)).all() == []


def test_the_cli_applies_the_same_checks(db_url, session, no_allowed_hosts, capsys):
    assert cli(["add-channel", "--kind", "webhook", "--url", "http://127.0.0.1:22/"]) == 1
    assert "内网" in capsys.readouterr().err
    assert session.exec(select(AlertChannel)).all() == []


def test_an_allowed_host_may_be_internal(session, make_user, monkeypatch):
    monkeypatch.setenv("ALERT_ALLOWED_HOSTS", "robots.internal, 127.0.0.1")
    get_settings.cache_clear()
    admin = make_user(Role.hq_admin).actor
    channel_service.add_channel(session=session, actor=admin, kind="wecom",
                                url="http://127.0.0.1:8502/cgi-bin/webhook/send?key=k")
    channel_service.add_channel(session=session, actor=admin, kind="webhook", url="http://127.0.0.1:9000/hook")


def test_an_internal_address_is_refused_again_when_sending(engine, session, make_user, monkeypatch):
    robots = start_simulator()
    try:
        # Saved while the host was allowed (or its name resolved elsewhere then).
        channel = AlertChannel(name="内网", kind="webhook", url=f"{robots.base_url}/hook/inner")
        session.add(channel)
        session.commit()
        monkeypatch.setenv("ALERT_ALLOWED_HOSTS", "")
        get_settings.cache_clear()
        with pytest.raises(InvalidInput) as error:
            channel_service.send_test(session=session, actor=make_user(Role.hq_admin).actor, channel_id=channel.id)
        assert "内网" in str(error.value.params["reason"])
        enqueue(session=session, alert_id=None, branch_id=None, text="账号 客户容量已达到70%")
        session.commit()
        assert deliver_due(engine=engine).sent == 0
        session.expire_all()
        assert shown(session.get(AlertChannel, channel.id).last_error).startswith("未发送")
        assert [d.status for d in session.exec(select(AlertDelivery))] == ["pending"]
        assert robots.messages() == []
    finally:
        robots.stop()

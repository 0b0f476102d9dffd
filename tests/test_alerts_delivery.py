"""Alert delivery through the outbox to real robot endpoints (the simulator's
WeCom, DingTalk, Feishu and webhook inboxes): retries until delivered exactly
once, signatures checked by the receiving side, per-robot rate limits with
digests, giving up after 24 hours, and add-channel."""

from datetime import timedelta

import httpx
import pytest
from sqlmodel import select

from console.cli import main as cli
from core.alerts import channels as channel_service
from core.alerts import log as alert_log
from core.alerts.outbox import deliver_due, enqueue
from core.errors import InvalidInput
from core.timeutil import utcnow
from core.wecom.simulator import Fault
from db.models import AlertChannel, AlertDelivery, Role
from tests.support.capacity import start_simulator


@pytest.fixture
def robots():
    sim = start_simulator(robot_secrets={"ding1": "SECabc", "fs1": "fs-secret"})
    yield sim
    sim.stop()


def add(session, sim, kind, robot, secret=None, branch=None):
    url = {"wecom": f"{sim.base_url}/cgi-bin/webhook/send?key={robot}",
           "dingtalk": f"{sim.base_url}/robot/send?access_token={robot}",
           "feishu": f"{sim.base_url}/open-apis/bot/v2/hook/{robot}",
           "webhook": f"{sim.base_url}/hook/{robot}"}[kind]
    channel = AlertChannel(name=f"{kind}-{robot}", kind=kind, url=url, secret=secret, branch_id=branch)
    session.add(channel)
    session.commit()
    return channel


def statuses(session):
    session.expire_all()
    return [(d.status, d.attempts) for d in session.exec(select(AlertDelivery).order_by(AlertDelivery.id)).all()]


def test_robot_failing_then_succeeding_gets_the_message_exactly_once(engine, session, robots):
    add(session, robots, "wecom", "hq")
    enqueue(session=session, alert_id=None, branch_id=None, text="store1 客户容量已达到70%")
    session.commit()
    robots.inject("webhook/send", Fault(errcode=45009), Fault(http_status=500), Fault(delay_seconds=1.0))
    now = utcnow()
    with httpx.Client(timeout=0.3) as http:
        for step in range(4):
            # Each run is after the previous one's backoff (at most 2 minutes here).
            deliver_due(engine=engine, now=now + timedelta(minutes=3 * step), http=http)
    assert [m.text for m in robots.messages()] == ["store1 客户容量已达到70%"]
    assert statuses(session) == [("sent", 4)]
    # Later runs send nothing more.
    deliver_due(engine=engine, now=now + timedelta(hours=1))
    assert len(robots.messages()) == 1


def test_a_failed_send_waits_for_its_backoff(engine, session, robots):
    add(session, robots, "wecom", "hq")
    enqueue(session=session, alert_id=None, branch_id=None, text="x")
    session.commit()
    robots.inject("webhook/send", Fault(http_status=502))
    now = utcnow()
    deliver_due(engine=engine, now=now)
    deliver_due(engine=engine, now=now + timedelta(seconds=5))  # before the first backoff (≥ 12 s)
    assert statuses(session) == [("pending", 1)]
    channel = session.exec(select(AlertChannel)).one()
    assert channel.last_error == "HTTP 502" and channel.last_success_at is None


def test_dingtalk_and_feishu_signatures_are_accepted_by_the_robots(engine, session, robots):
    add(session, robots, "dingtalk", "ding1", secret="SECabc")
    add(session, robots, "feishu", "fs1", secret="fs-secret")
    enqueue(session=session, alert_id=None, branch_id=None, text="签名测试")
    session.commit()
    figures = deliver_due(engine=engine)
    assert figures.sent == 2, figures.errors
    assert sorted(m.kind for m in robots.messages()) == ["dingtalk", "feishu"]


def test_wrong_signing_secret_is_refused_and_kept_for_retry(engine, session, robots):
    add(session, robots, "dingtalk", "ding1", secret="wrong")
    add(session, robots, "feishu", "fs1", secret="wrong")
    enqueue(session=session, alert_id=None, branch_id=None, text="签名测试")
    session.commit()
    figures = deliver_due(engine=engine)
    assert figures.sent == 0 and robots.messages() == []
    errors = sorted(c.last_error for c in session.exec(select(AlertChannel)).all())
    assert errors == ["errcode 19021: sign match fail or timestamp is not within one hour",
                      "errcode 310000: sign not match"]
    assert statuses(session) == [("pending", 1), ("pending", 1)]


def test_more_alerts_than_the_robot_may_take_become_one_digest(engine, session, robots):
    add(session, robots, "wecom", "hq")
    for number in range(25):
        enqueue(session=session, alert_id=None, branch_id=None, text=f"账号{number:02d} 客户容量已达到70%\n第二行")
    session.commit()
    figures = deliver_due(engine=engine)
    assert (figures.sent, figures.messages, figures.digests) == (25, 20, 1)
    inbox = robots.messages()
    assert len(inbox) == 20  # WeCom's 20 per minute: no 45009, nothing dropped
    digest = inbox[-1].text.splitlines()
    assert "共 6 条" in digest[0] and digest[1:] == [f"账号{n:02d} 客户容量已达到70%" for n in range(19, 25)]
    assert all(status == "sent" for status, _ in statuses(session))
    # The robot's minute is used up: new alerts wait for the next window rather than hit 45009.
    enqueue(session=session, alert_id=None, branch_id=None, text="later")
    session.commit()
    assert deliver_due(engine=engine).waiting_for_rate == 1
    # A minute later (by our clock) it is tried; the robot's own clock still says
    # throttled (45009), so it stays in the outbox for the next run.
    assert deliver_due(engine=engine, now=utcnow() + timedelta(seconds=61)).failed_attempts == 1
    assert statuses(session)[-1] == ("pending", 1)


def test_after_24_hours_of_failures_the_delivery_stays_failed_and_can_be_retried(engine, session, robots,
                                                                                 make_user):
    add(session, robots, "wecom", "badkey")
    enqueue(session=session, alert_id=None, branch_id=None, text="x")
    session.commit()
    now = utcnow()
    step = now
    while step < now + timedelta(hours=25):
        deliver_due(engine=engine, now=step)
        step += timedelta(minutes=31)
    session.expire_all()
    delivery = session.exec(select(AlertDelivery)).one()
    assert delivery.status == "failed" and delivery.last_error.startswith("errcode 93000")
    operator = make_user(Role.hq_operator)
    rows, total = alert_log.list_deliveries(session=session, actor=operator.actor, status="failed")
    assert total == 1 and rows[0].delivery.id == delivery.id
    alert_log.retry_deliveries(session=session, actor=operator.actor, delivery_ids=[delivery.id])
    session.commit()
    assert statuses(session)[0][0] == "pending"


def test_send_test_message_reports_the_robot_reason(session, robots, make_user):
    operator = make_user(Role.hq_operator)
    good = add(session, robots, "webhook", "ops")
    bad = add(session, robots, "wecom", "badkey")
    channel_service.send_test(session=session, actor=operator.actor, channel_id=good.id)
    session.commit()
    assert "测试消息" in robots.messages()[0].text
    with pytest.raises(InvalidInput) as error:
        channel_service.send_test(session=session, actor=operator.actor, channel_id=bad.id)
    assert "93000" in error.value.params["reason"]
    session.expire_all()
    assert session.get(AlertChannel, bad.id).last_error.startswith("errcode 93000")
    assert session.get(AlertChannel, good.id).last_success_at is not None


def test_channel_rules(session, org, make_user):
    operator = make_user(Role.hq_operator)
    with pytest.raises(InvalidInput) as error:
        channel_service.add_channel(session=session, actor=operator.actor, kind="wecom", url="ftp://x")
    assert error.value.key == "alerts.channel.bad_url"
    with pytest.raises(InvalidInput) as error:
        channel_service.add_channel(session=session, actor=operator.actor, kind="dingtalk",
                                    url="https://oapi.dingtalk.com/robot/send?access_token=t", branch_code="NOPE")
    assert error.value.key == "alerts.channel.unknown_branch"
    manager = make_user(Role.branch_manager, org["north"])
    from core.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        channel_service.add_channel(session=session, actor=manager.actor, kind="webhook", url="https://x.example/h")


def test_add_channel_command(db_url, org, session, capsys):
    assert cli(["add-channel", "--kind", "dingtalk", "--url", "https://oapi.dingtalk.com/robot/send?access_token=t",
                "--secret", "SEC1", "--branch", "SH01", "--name", "上海群"]) == 0
    assert cli(["add-channel", "--kind", "wecom",
                "--url", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"]) == 0
    assert cli(["add-channel", "--kind", "feishu", "--url", "x", "--branch", "SH01"]) == 1
    assert "Webhook 地址" in capsys.readouterr().err
    rows = session.exec(select(AlertChannel).order_by(AlertChannel.id)).all()
    assert [(c.kind, c.name, c.secret, c.branch_id) for c in rows] == [
        ("dingtalk", "上海群", "SEC1", org["south"].id), ("wecom", "企业微信群机器人", None, None)]


def test_nothing_is_sent_in_the_first_seconds_of_the_hour_or_half_hour():
    from datetime import datetime

    from core.alerts.outbox import quiet_wait

    assert quiet_wait(datetime(2026, 11, 23, 10, 0, 3)) == pytest.approx(12)
    assert quiet_wait(datetime(2026, 11, 23, 10, 30, 0, 500_000)) == pytest.approx(14.5)
    assert quiet_wait(datetime(2026, 11, 23, 10, 30, 15)) == 0
    assert quiet_wait(datetime(2026, 11, 23, 10, 17, 2)) == 0

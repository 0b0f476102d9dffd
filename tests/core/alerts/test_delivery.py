"""Alert delivery through the outbox to real robot endpoints (the simulator's
WeCom, DingTalk, Feishu and webhook inboxes): retries until delivered exactly
once, signatures checked by the receiving side, per-robot rate limits with
digests, giving up after 24 hours, and add-channel."""

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import httpx
import pytest
from sqlmodel import select

from base.errors import InvalidInput
from base.timeutil import utcnow
from console.cli import main as cli
from core.alerts import channels as channel_service
from core.alerts import log as alert_log
from core.alerts.outbox import deliver_due, enqueue
from db.models import AlertChannel, AlertDelivery, Role
from db.models.capacity import RobotSend
from demo.simulator import Fault
from tests.support.capacity import start_simulator
from tests.support.problems import shown


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
    assert shown(channel.last_error) == "HTTP 502" and channel.last_success_at is None


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
    errors = sorted(shown(c.last_error) for c in session.exec(select(AlertChannel)).all())
    assert errors == ["errcode 19021: sign match fail or timestamp is not within one hour",
                      "errcode 310000: sign not match"]
    assert statuses(session) == [("pending", 1), ("pending", 1)]


def sends_per_sliding_minute(session, channel_id):
    """The most messages handed to the robot within any 60 seconds."""
    times = sorted(r.sent_at for r in session.exec(select(RobotSend).where(RobotSend.channel_id == channel_id)))
    return max((sum(1 for other in times if at - timedelta(seconds=60) < other <= at) for at in times), default=0)


def test_more_alerts_than_the_robot_may_take_become_one_digest_with_every_alert_in_full(engine, session, robots):
    add(session, robots, "wecom", "hq")
    texts = [f"账号{number:02d} 客户容量已达到70%\n分公司:北京分公司 门店:店{number:02d}" for number in range(25)]
    for text in texts:
        enqueue(session=session, alert_id=None, branch_id=None, text=text)
    session.commit()
    figures = deliver_due(engine=engine)
    assert (figures.sent, figures.messages, figures.digests) == (25, 1, 1)
    [digest] = robots.messages()
    assert "本条合并 25 条告警" in digest.text
    assert all(f"{number + 1}. {text}" in digest.text for number, text in enumerate(texts))
    assert all(status == "sent" for status, _ in statuses(session))
    assert {d.digest_size for d in session.exec(select(AlertDelivery))} == {25}


def test_two_hundred_alerts_reach_one_robot_in_full_digests_spread_over_the_following_minutes(engine, session):
    # The robot itself never throttles here: the test counts what we send in any 60 s of our clock.
    sim = start_simulator(robot_per_minute={"wecom": 10_000})
    try:
        channel = add(session, sim, "wecom", "hq")
        texts = [f"北京朝阳区门店{number:03d}客服(账号:store{number:06d})客户容量已达到70%,请及时处理。\n"
                 f"分公司:北京分公司 门店:北京朝阳区门店{number:03d} 客户数:3500/5000" for number in range(200)]
        start = utcnow()
        for text in texts:
            enqueue(session=session, alert_id=None, branch_id=None, text=text, now=start)
        # The robot already took 15 messages in the last half minute.
        session.add_all([RobotSend(channel_id=channel.id, sent_at=start - timedelta(seconds=30)) for _ in range(15)])
        session.commit()
        passes = 0
        while any(status != "sent" for status, _ in statuses(session)):
            assert passes < 20, statuses(session)
            deliver_due(engine=engine, now=start + timedelta(seconds=30 * passes))
            passes += 1
        inbox = [m.text for m in sim.messages()]
        assert all(len(text.encode()) <= 2048 for text in inbox)
        received = "\n".join(inbox)
        assert all(text in received for text in texts)  # every alert's lines, none cut or dropped
        assert sends_per_sliding_minute(session, channel.id) <= 20
        # Five digests fitted the first minute; the rest followed in the next passes.
        assert passes >= 2 and len(inbox) > 5
    finally:
        sim.stop()


def test_the_rate_window_slides_and_holds_across_runs_and_restarts(engine, session):
    sim = start_simulator(robot_per_minute={"wecom": 10_000})
    try:
        channel = add(session, sim, "wecom", "hq")
        start = utcnow()

        def burst(count, at):
            for number in range(count):
                enqueue(session=session, alert_id=None, branch_id=None, text=f"{at:%H%M%S}-{number}", now=at)
            session.commit()
            # A fresh call each time: nothing carried in memory, as after a restart.
            return deliver_due(engine=engine, now=at)

        assert burst(1, start).messages == 1
        assert burst(19, start + timedelta(seconds=30)).messages == 19
        # A fixed window restarting at T+60 would allow 20 more here (39 within 30 s);
        # the sliding one still counts the 19 sent 30 s ago: one message, a digest of all 20.
        at_60 = burst(20, start + timedelta(seconds=63))
        assert (at_60.messages, at_60.sent, at_60.digests) == (1, 20, 1)
        assert burst(25, start + timedelta(seconds=95)).messages == 1   # the 19 have left the window
        assert sends_per_sliding_minute(session, channel.id) <= 20
        assert len(sim.messages()) == 22
    finally:
        sim.stop()


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
    assert delivery.status == "failed" and shown(delivery.last_error).startswith("errcode 93000")
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
    assert shown(session.get(AlertChannel, bad.id).last_error).startswith("errcode 93000")
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
    from base.errors import PermissionDenied

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


def test_a_malformed_channel_address_does_not_stop_the_other_channels(engine, session, robots):
    # Saved before addresses were checked (or edited in the database): httpx raises
    # InvalidURL, which is not an HTTPError.
    broken = AlertChannel(name="坏地址", kind="webhook", url="http://127.0.0.1:abc/hook")
    session.add(broken)
    session.commit()
    good = add(session, robots, "wecom", "hq")
    enqueue(session=session, alert_id=None, branch_id=None, text="账号 客户容量已达到70%")
    session.commit()
    figures = deliver_due(engine=engine)
    assert figures.sent == 1 and [m.text for m in robots.messages()] == ["账号 客户容量已达到70%"]
    session.expire_all()
    broken = session.get(AlertChannel, broken.id)
    assert shown(broken.last_error).startswith("机器人地址无效") and "Invalid port" in shown(broken.last_error)
    assert session.get(AlertChannel, good.id).last_success_at is not None
    by_channel = {d.channel_id: d for d in session.exec(select(AlertDelivery))}
    assert by_channel[broken.id].status == "pending" and by_channel[broken.id].last_error == broken.last_error
    assert by_channel[good.id].status == "sent"


def test_a_malformed_address_is_refused_when_saved_with_a_chinese_reason(session, org, make_user, capsys):
    operator = make_user(Role.hq_operator)
    for url in ("http://host:abc/hook", "http://exa mple.com/hook", "https:///hook"):
        with pytest.raises(InvalidInput) as error:
            channel_service.add_channel(session=session, actor=operator.actor, kind="webhook", url=url)
        assert error.value.key in ("alerts.channel.bad_url_reason", "alerts.channel.bad_url"), url
    assert cli(["add-channel", "--kind", "webhook", "--url", "http://host:abc/hook"]) == 1
    assert "Webhook 地址无效" in capsys.readouterr().err
    assert session.exec(select(AlertChannel)).all() == []


def test_send_test_message_to_a_malformed_address_reports_a_reason_not_a_traceback(session, make_user):
    operator = make_user(Role.hq_operator)
    channel = AlertChannel(name="坏地址", kind="webhook", url="http://127.0.0.1:abc/hook")
    session.add(channel)
    session.commit()
    with pytest.raises(InvalidInput) as error:
        channel_service.send_test(session=session, actor=operator.actor, channel_id=channel.id)
    assert error.value.key == "alerts.channel.test_failed"
    assert error.value.params["reason"].startswith("机器人地址无效")


def test_a_robot_that_takes_the_message_but_whose_reply_is_lost_still_gets_it_and_the_duplicate_is_counted(
        engine, session, robots):
    add(session, robots, "wecom", "hq")
    enqueue(session=session, alert_id=None, branch_id=None, text="store1 客户容量已达到70%")
    session.commit()
    robots.inject("webhook/send", Fault(delay_seconds=1.0, accept=True))
    now = utcnow()
    with httpx.Client(timeout=0.3) as http:
        first = deliver_due(engine=engine, now=now, http=http)
        assert (first.sent, first.uncertain) == (0, 1)
        assert statuses(session) == [("pending", 1)]
        second = deliver_due(engine=engine, now=now + timedelta(minutes=5), http=http)
    assert second.sent == 1
    delivery = session.exec(select(AlertDelivery)).one()
    # Delivered (twice, in fact): at least once, never lost, and the possible duplicate is on record.
    assert (delivery.status, delivery.attempts, delivery.uncertain_sends) == ("sent", 2, 1)
    assert [m.text for m in robots.messages()] == ["store1 客户容量已达到70%"] * 2


def test_a_claim_left_by_a_sidecar_that_died_mid_send_is_sent_again(engine, session, robots):
    channel = add(session, robots, "wecom", "hq")
    now = utcnow()
    session.add(AlertDelivery(channel_id=channel.id, text="store1 客户容量已达到70%", status="sending", attempts=1,
                              claimed_at=now - timedelta(seconds=40), claim_token="old-host:1:dead#3",
                              created_at=now, next_attempt_at=now, retry_until=now + timedelta(hours=24)))
    session.commit()
    figures = deliver_due(engine=engine, now=now)
    assert (figures.recovered, figures.sent) == (1, 1)
    delivery = session.exec(select(AlertDelivery)).one()
    assert (delivery.status, delivery.attempts, delivery.uncertain_sends) == ("sent", 2, 1)
    assert len(robots.messages()) == 1


def test_messages_for_a_disabled_channel_wait_with_a_reason_then_fail_with_it(engine, session, robots):
    channel = add(session, robots, "wecom", "hq")
    enqueue(session=session, alert_id=None, branch_id=None, text="x")
    channel.enabled = False
    session.add(channel)
    session.commit()
    now = utcnow()
    assert deliver_due(engine=engine, now=now).held_by_disabled_channel == 1
    delivery = session.exec(select(AlertDelivery)).one()
    assert delivery.status == "pending" and shown(delivery.last_error).startswith("渠道已停用")
    deliver_due(engine=engine, now=now + timedelta(hours=25))
    session.expire_all()
    delivery = session.exec(select(AlertDelivery)).one()
    assert delivery.status == "failed" and shown(delivery.last_error).startswith("渠道已停用")
    assert robots.messages() == []


def test_dingtalk_and_feishu_signatures_match_the_documented_algorithm():
    """Known answers, computed by hand from WECOM.md: DingTalk signs timestamp(ms)
    + "\\n" + secret with the secret as key; Feishu uses timestamp(s) + "\\n" +
    secret as the key of an empty message. Both base64; DingTalk's is URL-encoded."""
    from core.alerts.robots import Target, build_request, dingtalk_sign, feishu_sign

    ding_secret, stamp_ms = "SEC1f2d3c4b5a69788796a5b4c3d2e1f0", 1732345678901
    expected = base64.b64encode(hmac.new(ding_secret.encode(), f"{stamp_ms}\n{ding_secret}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert expected == "UrQNP5NYDPJH504OVJs9SUW0X9JQr/iM86QZQrvq2uQ="
    assert dingtalk_sign(ding_secret, stamp_ms) == expected
    url, _headers, _body = build_request(Target("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=T",
                                                ding_secret), "x", now=stamp_ms / 1000)
    assert url == ("https://oapi.dingtalk.com/robot/send?access_token=T&timestamp=1732345678901"
                   "&sign=UrQNP5NYDPJH504OVJs9SUW0X9JQr%2FiM86QZQrvq2uQ%3D")

    feishu_secret, stamp_s = "fs-demo-secret", 1732345678
    expected = base64.b64encode(hmac.new(f"{stamp_s}\n{feishu_secret}".encode(), b"",
                                         hashlib.sha256).digest()).decode()
    assert expected == "oMUUPUFviwFu07H1smAnTwf0J7KlCrWm0YqRpQ0KkpY="
    assert feishu_sign(feishu_secret, stamp_s) == expected
    _url, _headers, body = build_request(Target("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/t",
                                                feishu_secret), "x", now=stamp_s + 0.75)
    assert json.loads(body) == {"msg_type": "text", "content": {"text": "x"}, "timestamp": "1732345678",
                                "sign": "oMUUPUFviwFu07H1smAnTwf0J7KlCrWm0YqRpQ0KkpY="}

"""Alerts as WeCom app messages (channel kind wecom_app) over HTTP against the
simulator: who receives them, the card, per-member pacing, WeCom's duplicate
check, invalid members recorded and shown, at least once across a crash, the
test message, and the channel's rules."""

from datetime import timedelta

import pytest
from sqlmodel import select

from base.config import get_settings
from base.errors import InvalidInput
from base.timeutil import utcnow
from core.alerts import channels as channel_service
from core.alerts.app_messages import HOUR_WINDOW, MINUTE_WINDOW
from core.alerts.outbox import deliver_due, enqueue
from core.wecom.client import WeComClient, forget_tokens
from db.models import AlertChannel, AlertDelivery, AlertLevel, CapacityAlert, ChannelInvalidUser, Role
from db.models.capacity import MemberMessageSend
from demo.simulator import Fault
from tests.support.capacity import start_simulator
from tests.support.factories import make_account
from tests.support.problems import shown

CONSOLE = "https://console.example.com"


@pytest.fixture
def sim(monkeypatch):
    simulator = start_simulator()
    simulator.set_members({"ops.lead": {"name": "运营主管"}, "mgr.north": {"name": "北区经理"},
                           "mgr.off": {"name": "停用经理"}, "mgr.old": {"name": "过期经理"},
                           "mgr.south": {"name": "南区经理"}, "gone.member": {"name": "已离职", "status": 5}})
    for key, value in {"WECOM_API_BASE": simulator.base_url, "WECOM_CORP_ID": simulator.corp_id,
                       "WECOM_SECRET": simulator.secret, "WECOM_AGENT_ID": simulator.agent_id,
                       "CONSOLE_BASE_URL": CONSOLE}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    forget_tokens()
    yield simulator
    simulator.stop()


@pytest.fixture
def operator(make_user):
    return make_user(Role.hq_operator)


def app_channel(session, operator, members="ops.lead", to_branch_managers=False, branch_code=None):
    channel = channel_service.add_channel(session=session, actor=operator.actor, kind="wecom_app", members=members,
                                          to_branch_managers=to_branch_managers, branch_code=branch_code)
    session.commit()
    return channel


def alert(session, branch, level=AlertLevel.warn):
    account = make_account(session, f"acct{level}", count=3600, limit=5000)
    row = CapacityAlert(account_id=account.id, level=level, level_pct=70, branch_id=branch.id,
                        customer_count=3600, capacity_limit=5000)
    session.add(row)
    session.commit()
    return row


def deliveries(session):
    session.expire_all()
    return session.exec(select(AlertDelivery).order_by(AlertDelivery.id)).all()


class RecordingClient(WeComClient):
    """The real client, keeping each request body it sends."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.bodies: list[dict] = []

    def call(self, api, **options):
        if api == "message/send":
            self.bodies.append(options.get("body"))
        return super().call(api, **options)


def test_listed_members_and_the_linked_enabled_branch_managers_get_a_card_back_to_the_console(
        session, org, sim, operator, make_user):
    make_user(Role.branch_manager, org["north"], wecom_userid="mgr.north")
    make_user(Role.branch_manager, org["north"], wecom_userid="mgr.off", disabled=True)
    make_user(Role.branch_manager, org["north"], wecom_userid="mgr.old", expires_at=utcnow() - timedelta(days=1))
    make_user(Role.branch_manager, org["north"])  # not linked to WeCom
    make_user(Role.branch_manager, org["south"], wecom_userid="mgr.south")
    make_user(Role.hq_operator, wecom_userid="MGR.other.hq")
    app_channel(session, operator, members="ops.lead", to_branch_managers=True)
    warn = alert(session, org["north"])
    assert enqueue(session=session, alert_id=warn.id, branch_id=org["north"].id, text="北区门店 客户容量已达到70%") == 1
    session.commit()
    # Who it is for is fixed when it is queued, and the outbox row says so.
    assert [d.recipients for d in deliveries(session)] == ["ops.lead|mgr.north"]

    figures = deliver_due(engine=session.get_bind())
    assert figures.sent == 1, figures.errors
    cards = sorted(sim.app_messages(), key=lambda m: m.userid)
    assert [m.userid for m in cards] == ["mgr.north", "ops.lead"]
    assert {(m.title, m.description, m.url, m.btntxt) for m in cards} == {
        ("企微账号容量预警", "北区门店 客户容量已达到70%", f"{CONSOLE}/capacity", "查看详情")}
    assert deliveries(session)[0].status == "sent"


def test_a_member_left_alert_links_to_the_accounts_page(session, org, sim, operator):
    app_channel(session, operator)
    left = alert(session, org["north"], level=AlertLevel.member_left)
    enqueue(session=session, alert_id=left.id, branch_id=org["north"].id, text="北区一号店的企微账号已离职")
    session.commit()
    deliver_due(engine=session.get_bind())
    [message] = sim.app_messages()
    assert (message.title, message.url) == ("门店企微成员离职/停用", f"{CONSOLE}/accounts")


def test_a_channel_with_nobody_to_message_for_the_alert_does_not_take_it(session, org, sim, operator):
    app_channel(session, operator, members="", to_branch_managers=True, branch_code=org["south"].code)
    assert enqueue(session=session, alert_id=None, branch_id=org["south"].id, text="x") == 0
    assert deliveries(session) == []


def test_the_31st_message_in_a_minute_to_one_member_waits_and_goes_out_the_next_minute(session, sim, operator):
    app_channel(session, operator)
    now = utcnow()
    for number in range(31):
        enqueue(session=session, alert_id=None, branch_id=None, text=f"告警 {number:02d}", now=now)
    session.commit()
    first = deliver_due(engine=session.get_bind(), now=now)
    assert (first.sent, first.waiting_for_rate) == (30, 1)
    # WeCom would have dropped it without a word: nothing was sent beyond the member's limit.
    assert len(sim.app_messages()) == 30 and not sim.people.dropped
    waiting = [d for d in deliveries(session) if d.status == "pending"]
    assert [d.text for d in waiting] == ["告警 30"]
    assert now + MINUTE_WINDOW <= waiting[0].next_attempt_at <= now + MINUTE_WINDOW + timedelta(seconds=5)

    assert deliver_due(engine=session.get_bind(), now=now + timedelta(seconds=30)).sent == 0
    sim.people.member_per_minute = 10_000   # WeCom's own minute has passed as well
    later = deliver_due(engine=session.get_bind(), now=waiting[0].next_attempt_at)
    assert later.sent == 1
    assert [m.description for m in sim.app_messages()][-1] == "告警 30"
    assert all(d.status == "sent" for d in deliveries(session))


def test_a_member_with_a_thousand_messages_in_the_last_hour_waits_for_the_oldest_to_leave_it(
        session, sim, operator):
    app_channel(session, operator)
    now = utcnow()
    oldest = now - timedelta(minutes=59)
    session.add_all([MemberMessageSend(userid="ops.lead", sent_at=oldest + timedelta(seconds=3 * n))
                     for n in range(1000)])
    enqueue(session=session, alert_id=None, branch_id=None, text="x", now=now)
    session.commit()
    assert deliver_due(engine=session.get_bind(), now=now).waiting_for_rate == 1
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.next_attempt_at) == ("pending", oldest + HOUR_WINDOW)
    assert sim.app_messages() == []


def test_cards_ask_for_wecom_duplicate_check(session, sim, operator):
    app_channel(session, operator)
    enqueue(session=session, alert_id=None, branch_id=None, text="x")
    session.commit()
    with RecordingClient(sim.base_url, sim.corp_id, sim.secret) as client:
        deliver_due(engine=session.get_bind(), wecom=client)
    [body] = client.bodies
    assert (body["enable_duplicate_check"], body["duplicate_check_interval"]) == (1, 1800)
    assert (body["msgtype"], str(body["agentid"]), body["touser"]) == ("textcard", sim.agent_id, "ops.lead")


def test_a_crash_between_claim_and_confirm_sends_again_and_the_member_sees_it_once(session, sim, operator):
    app_channel(session, operator)
    enqueue(session=session, alert_id=None, branch_id=None, text="北区门店 客户容量已达到70%")
    session.commit()

    class DiesAfterSending(WeComClient):
        def call(self, api, **options):
            answer = super().call(api, **options)
            if api == "message/send":
                raise KeyboardInterrupt("the sidecar is killed before it records the answer")
            return answer

    with DiesAfterSending(sim.base_url, sim.corp_id, sim.secret) as dying, pytest.raises(KeyboardInterrupt):
        deliver_due(engine=session.get_bind(), wecom=dying)
    assert [(d.status, d.attempts) for d in deliveries(session)] == [("sending", 1)]

    figures = deliver_due(engine=session.get_bind())
    assert (figures.recovered, figures.sent) == (1, 1)
    [delivery] = deliveries(session)
    # Sent twice, counted as a possible duplicate; WeCom's duplicate check kept the member from seeing it twice.
    assert (delivery.status, delivery.attempts, delivery.uncertain_sends) == ("sent", 2, 1)
    assert [m.description for m in sim.app_messages()] == ["北区门店 客户容量已达到70%"]


def test_wecom_refusing_keeps_the_message_for_a_retry_with_the_reason(session, sim, operator):
    channel = app_channel(session, operator)
    enqueue(session=session, alert_id=None, branch_id=None, text="x")
    session.commit()
    sim.inject("message/send", Fault(errcode=-1))
    now = utcnow()
    first = deliver_due(engine=session.get_bind(), now=now)
    assert (first.sent, first.failed_attempts) == (0, 1)
    [delivery] = deliveries(session)
    assert delivery.status == "pending" and delivery.next_attempt_at > now
    assert shown(session.get(AlertChannel, channel.id).last_error) == "企业微信系统繁忙（-1），重试 3 次仍失败。"
    assert deliver_due(engine=session.get_bind(), now=now + timedelta(minutes=5)).sent == 1
    assert len(sim.app_messages()) == 1


def test_invalid_members_are_recorded_per_member_and_shown_on_the_channel(session, sim, operator):
    channel = app_channel(session, operator, members="ops.lead|ghost|gone.member")
    for text in ("第一条", "第二条"):
        enqueue(session=session, alert_id=None, branch_id=None, text=text)
        session.commit()
        assert deliver_due(engine=session.get_bind()).sent == 1
    # Sent for the valid one; the others are named on the delivery and counted on the channel.
    assert [m.userid for m in sim.app_messages()] == ["ops.lead", "ops.lead"]
    delivery = deliveries(session)[0]
    assert delivery.status == "sent"
    assert shown(delivery.last_error) == "以下成员未收到（企业微信答复为无效成员）：ghost, gone.member"
    rows = session.exec(select(ChannelInvalidUser).order_by(ChannelInvalidUser.userid)).all()
    assert [(r.userid, r.times) for r in rows] == [("ghost", 2), ("gone.member", 2)]
    [row] = channel_service.list_channels(session=session, actor=operator.actor)
    assert row.invalid_users == ("ghost", "gone.member")

    # Once WeCom takes a member again it is no longer shown.
    sim.set_members({"ghost": {"name": "新同事"}})
    enqueue(session=session, alert_id=None, branch_id=None, text="第三条")
    session.commit()
    deliver_due(engine=session.get_bind())
    [row] = channel_service.list_channels(session=session, actor=operator.actor)
    assert row.invalid_users == ("gone.member",) and row.channel.id == channel.id


def test_a_message_nobody_can_receive_fails_at_once_with_the_members_named(session, sim, operator):
    app_channel(session, operator, members="gone.member")
    enqueue(session=session, alert_id=None, branch_id=None, text="x")
    session.commit()
    assert deliver_due(engine=session.get_bind()).gave_up == 1
    [delivery] = deliveries(session)
    assert delivery.status == "failed" and "gone.member" in shown(delivery.last_error)


def test_test_message_goes_to_the_members_and_the_branch_managers(session, org, sim, operator, make_user):
    make_user(Role.branch_manager, org["north"], wecom_userid="mgr.north")
    channel = app_channel(session, operator, members="ops.lead|ghost", to_branch_managers=True,
                          branch_code=org["north"].code)
    invalid = channel_service.send_test(session=session, actor=operator.actor, channel_id=channel.id)
    session.commit()
    assert invalid == ("ghost",)
    assert sorted(m.userid for m in sim.app_messages()) == ["mgr.north", "ops.lead"]
    assert sim.app_messages()[0].title == "告警渠道测试"
    assert session.get(AlertChannel, channel.id).last_success_at is not None
    # A test message counts against the members' windows.
    assert len(session.exec(select(MemberMessageSend)).all()) == 3


def test_test_message_when_nobody_can_receive_it_says_why(session, sim, operator):
    channel = app_channel(session, operator, members="gone.member")
    with pytest.raises(InvalidInput) as error:
        channel_service.send_test(session=session, actor=operator.actor, channel_id=channel.id)
    assert error.value.key == "alerts.channel.test_failed" and "gone.member" in error.value.params["reason"]


def test_app_channel_rules(session, org, sim, operator, monkeypatch):
    def refused(**options):
        with pytest.raises(InvalidInput) as error:
            channel_service.add_channel(session=session, actor=operator.actor, **options)
        return error.value.key

    assert refused(kind="wecom_app", members="") == "alerts.channel.no_recipients"
    assert refused(kind="wecom_app", members="ok|not valid!") == "alerts.channel.bad_member"
    assert refused(kind="webhook", url="https://x.example/h", members="ops.lead") == "alerts.channel.members_app_only"
    channel = channel_service.add_channel(session=session, actor=operator.actor, kind="wecom_app",
                                          members="ops.lead | OPS.LEAD, mgr.north", url="https://ignored.example")
    assert (channel.recipients, channel.url, channel.name) == ("ops.lead|mgr.north", "", "企业微信应用消息")
    monkeypatch.setenv("WECOM_AGENT_ID", "")
    get_settings.cache_clear()
    assert refused(kind="wecom_app", members="ops.lead") == "alerts.channel.app_not_configured"


def test_without_the_app_configured_messages_wait_with_the_reason_on_the_channel(session, sim, operator,
                                                                                 monkeypatch):
    channel = app_channel(session, operator)
    enqueue(session=session, alert_id=None, branch_id=None, text="x")
    session.commit()
    monkeypatch.setenv("WECOM_SECRET", "")
    get_settings.cache_clear()
    deliver_due(engine=session.get_bind())
    assert deliveries(session)[0].status == "pending"
    assert shown(session.get(AlertChannel, channel.id).last_error).startswith("企业微信自建应用未配置")

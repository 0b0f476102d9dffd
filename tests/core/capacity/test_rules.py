"""Alert rules: one alert per account and level per episode, hysteresis, level
jumps notify only the highest, unacknowledged critical/full repeat, and the
message uses the seed's wording."""

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import select

from base.errors import ConcurrentEdit
from base.timeutil import utcnow
from core.alerts import log as alert_log
from core.auth.permissions import SYSTEM
from core.capacity.evaluate import evaluate
from core.capacity.rules import Thresholds, decide
from db.models import Account, AlertChannel, AlertDelivery, CapacityAlert, Role, SettingOverride
from tests.support.capacity import bind_accounts

LEVELS = Thresholds()


def test_decide_crossing_notifies_that_level():
    assert decide(70.0, set(), LEVELS).open == ("warn",)
    assert decide(70.0, set(), LEVELS).notify == "warn"
    assert decide(69.99, set(), LEVELS).open == ()


def test_decide_jump_opens_every_level_but_notifies_the_highest():
    decision = decide(100.0, set(), LEVELS)
    assert decision.open == ("warn", "critical", "full") and decision.notify == "full"
    decision = decide(92.0, {"warn"}, LEVELS)
    assert decision.open == ("critical",) and decision.notify == "critical"


def test_decide_hysteresis():
    assert decide(66.0, {"warn"}, LEVELS).close == frozenset()      # within 5 points: same episode
    assert decide(64.9, {"warn"}, LEVELS).close == {"warn"}          # 5 points below: episode over
    assert decide(86.0, {"warn", "critical"}, LEVELS).close == frozenset()
    assert decide(84.0, {"warn", "critical"}, LEVELS).close == {"critical"}


@pytest.fixture
def watched(session, org):
    accounts = bind_accounts(session, [("000101", "store000101", 3400, 5000), ("000201", "store000201", 100, 5000)])
    session.add_all([AlertChannel(name="总部群", kind="wecom", url="http://127.0.0.1:9/cgi-bin/webhook/send?key=hq"),
                     AlertChannel(name="上海群", kind="wecom", branch_id=org["south"].id,
                                  url="http://127.0.0.1:9/cgi-bin/webhook/send?key=sh")])
    session.commit()
    return accounts


def set_count(session, account, count):
    session.exec(update(Account).where(Account.id == account.id).values(customer_count=count))
    session.commit()


def run(session, now):
    figures = evaluate(session=session, now=now)
    session.commit()
    return figures


def deliveries(session):
    session.expire_all()
    return session.exec(select(AlertDelivery).order_by(AlertDelivery.id)).all()


def robots_took_everything(session, now):
    """What the sidecar's delivery pass does when every robot answers."""
    session.exec(update(AlertDelivery).where(AlertDelivery.status == "pending").values(status="sent", sent_at=now))
    session.commit()


def test_one_alert_per_episode_with_the_seed_wording(session, watched):
    north = watched["store000101"]
    now = utcnow()
    assert run(session, now)["notified"] == 0
    set_count(session, north, 3500)
    assert run(session, now + timedelta(minutes=10))["notified"] == 1
    # Still above the line on the next evaluations: no new message.
    set_count(session, north, 3600)
    run(session, now + timedelta(minutes=20))
    run(session, now + timedelta(minutes=30))
    sent = deliveries(session)
    assert len(sent) == 1  # the HQ channel only: the account is in Beijing, not Shanghai
    assert sent[0].text.splitlines()[0] == "北京朝阳大悦城店客服(账号:store000101)客户容量已达到70%,请及时处理。"
    assert sent[0].text.splitlines()[1] == "分公司:北京分公司 门店:北京朝阳大悦城店 客户数:3500/5000"


def test_branch_channel_gets_its_branch_alerts(session, watched):
    set_count(session, watched["store000201"], 3600)
    run(session, utcnow())
    assert sorted(d.channel_id for d in deliveries(session)) == [1, 2]


def test_hysteresis_then_a_new_crossing_alerts_again(session, watched):
    north = watched["store000101"]
    now = utcnow()
    set_count(session, north, 3500)
    run(session, now)
    set_count(session, north, 3300)   # 66 %: inside the 5-point band, same episode
    run(session, now + timedelta(minutes=10))
    set_count(session, north, 3500)
    run(session, now + timedelta(minutes=20))
    assert len(deliveries(session)) == 1
    set_count(session, north, 3200)   # 64 %: episode over
    assert run(session, now + timedelta(minutes=30))["closed"] == 1
    set_count(session, north, 3550)
    run(session, now + timedelta(minutes=40))
    assert len(deliveries(session)) == 2
    episodes = session.exec(select(CapacityAlert).where(CapacityAlert.account_id == north.id)).all()
    assert sorted((e.level, e.closed_at is None) for e in episodes) == [("warn", False), ("warn", True)]


def test_jump_across_levels_sends_only_the_highest(session, watched):
    north = watched["store000101"]
    set_count(session, north, 5000)
    figures = run(session, utcnow())
    assert figures["opened"] == 3 and figures["notified"] == 1
    sent = deliveries(session)
    assert len(sent) == 1 and "客户容量已达到100%" in sent[0].text
    levels = {a.level: a.notified for a in session.exec(select(CapacityAlert)).all()}
    assert levels == {"warn": False, "critical": False, "full": True}


def test_unacknowledged_critical_repeats_every_24_hours_until_acknowledged(session, watched, make_user):
    north = watched["store000101"]
    now = utcnow()
    set_count(session, north, 4600)
    run(session, now)
    robots_took_everything(session, now)
    run(session, now + timedelta(hours=23))
    assert len(deliveries(session)) == 1
    assert run(session, now + timedelta(hours=24, minutes=1))["repeated"] == 1
    robots_took_everything(session, now + timedelta(hours=24, minutes=1))
    run(session, now + timedelta(hours=25))
    assert len(deliveries(session)) == 2
    operator = make_user(Role.hq_operator)
    alert = session.exec(select(CapacityAlert).where(CapacityAlert.level == "critical")).one()
    assert alert_log.acknowledge(session=session, actor=operator.actor, alert_versions={alert.id: alert.version}) == 1
    session.commit()
    run(session, now + timedelta(hours=60))
    assert len(deliveries(session)) == 2


def test_no_repeat_is_queued_while_the_previous_message_is_still_in_the_outbox(session, watched):
    north = watched["store000101"]
    now = utcnow()
    set_count(session, north, 4600)
    run(session, now)
    # The robot has been down for 30 hours: the first message is still pending.
    assert run(session, now + timedelta(hours=30))["repeated"] == 0
    assert [d.status for d in deliveries(session)] == ["pending"]
    robots_took_everything(session, now + timedelta(hours=30))
    # Delivered at last; the next repeat follows the usual clock.
    assert run(session, now + timedelta(hours=30, minutes=1))["repeated"] == 1
    assert len(deliveries(session)) == 2


def test_after_a_jump_to_full_the_still_open_critical_level_takes_over_and_repeats(session, watched):
    north = watched["store000101"]
    now = utcnow()
    set_count(session, north, 5000)
    assert run(session, now)["notified"] == 1   # full only
    robots_took_everything(session, now)
    # Customers removed: 92 % closes full (below 95 %) but critical goes on.
    set_count(session, north, 4600)
    assert run(session, now + timedelta(hours=1))["closed"] == 1
    critical = session.exec(select(CapacityAlert).where(CapacityAlert.level == "critical")).one()
    session.refresh(critical)
    # Shown among open alerts (it stands for the account now), clocked from the full message.
    assert critical.notified and critical.closed_at is None and critical.last_notified_at == now
    assert [a.alert.id for a in alert_log.list_alerts(session=session, actor=SYSTEM, status="open")[0]
            if a.alert.level == "critical"] == [critical.id]
    assert run(session, now + timedelta(hours=23))["repeated"] == 0
    assert run(session, now + timedelta(hours=24, minutes=1))["repeated"] == 1
    sent = deliveries(session)
    assert len(sent) == 2 and "客户容量已达到90%" in sent[-1].text
    robots_took_everything(session, now + timedelta(hours=24, minutes=1))
    # However long it lasts, it keeps repeating every 24 hours until acknowledged.
    assert run(session, now + timedelta(hours=48, minutes=2))["repeated"] == 1


def test_an_alert_no_channel_takes_is_not_shown_as_notified_and_goes_out_once_a_channel_exists(session, org):
    north = bind_accounts(session, [("000101", "store000101", 3600, 5000)])["store000101"]
    hq = AlertChannel(name="总部群", kind="wecom", enabled=False,
                      url="http://127.0.0.1:9/cgi-bin/webhook/send?key=hq")
    session.add(hq)
    session.commit()
    now = utcnow()
    figures = run(session, now)
    assert (figures["opened"], figures["notified"], figures["no_channel"]) == (1, 0, 1)
    alert = session.exec(select(CapacityAlert)).one()
    assert (alert.last_notified_at, alert.notify_count) == (None, 0)
    rows, _total = alert_log.list_alerts(session=session, actor=SYSTEM, status="open")
    assert rows[0].without_channel
    assert alert_log.open_without_channel(session=session, actor=SYSTEM) == 1
    # The next evaluation does not pile anything up while there is still no channel…
    run(session, now + timedelta(minutes=1))
    assert deliveries(session) == []
    # …and once the channel is enabled the alert goes out, once.
    session.exec(update(AlertChannel).values(enabled=True))
    session.commit()
    assert run(session, now + timedelta(minutes=2))["notified"] == 1
    run(session, now + timedelta(minutes=3))
    assert len(deliveries(session)) == 1 and "store000101" in deliveries(session)[0].text
    session.refresh(alert)
    assert alert.notify_count == 1 and alert_log.open_without_channel(session=session, actor=SYSTEM) == 0
    assert north.id == alert.account_id


def test_warn_alerts_do_not_repeat(session, watched):
    set_count(session, watched["store000101"], 3600)
    now = utcnow()
    run(session, now)
    run(session, now + timedelta(days=3))
    assert len(deliveries(session)) == 1


def test_acknowledging_a_changed_alert_is_refused(session, watched, make_user):
    set_count(session, watched["store000101"], 4600)
    run(session, utcnow())
    alert = session.exec(select(CapacityAlert).where(CapacityAlert.level == "critical")).one()
    operator = make_user(Role.hq_operator)
    with pytest.raises(ConcurrentEdit):
        alert_log.acknowledge(session=session, actor=operator.actor, alert_versions={alert.id: alert.version - 1})


def test_an_account_leaving_active_ends_its_episodes(session, watched):
    north = watched["store000101"]
    set_count(session, north, 3600)
    run(session, utcnow())
    session.exec(update(Account).where(Account.id == north.id).values(status="disabled"))
    session.commit()
    assert run(session, utcnow())["closed"] == 1


def test_template_with_unknown_placeholder_is_refused(session, make_user):
    from base.errors import InvalidInput
    from core.capacity.alert_settings import save_template

    admin = make_user(Role.hq_admin)
    with pytest.raises(InvalidInput) as error:
        save_template(session=session, actor=admin.actor, text="{账号名称} 已满")
    assert error.value.key == "capacity.template.unknown_placeholder"
    with pytest.raises(InvalidInput) as error:
        save_template(session=session, actor=admin.actor, text="{企微账号 已满")
    assert error.value.key == "capacity.template.braces"
    saved = save_template(session=session, actor=admin.actor, text="【{级别}】{企微账号} 达到 {百分比}%")
    session.commit()
    assert saved == "【{级别}】{企微账号} 达到 {百分比}%"


# What the 告警设置 form is opened with on a fresh database: the defaults.
DEFAULT_THRESHOLDS = {"capacity.warn_pct": 70, "capacity.critical_pct": 90, "capacity.full_pct": 100,
                      "capacity.hysteresis_pct": 5, "capacity.repeat_hours": 24}


def test_thresholds_must_be_ordered(session, make_user):
    from base.errors import InvalidInput, PermissionDenied
    from core.capacity.alert_settings import save_thresholds

    admin = make_user(Role.hq_admin)
    with pytest.raises(InvalidInput):
        save_thresholds(session=session, actor=admin.actor, warn=90, critical=80, full=100, hysteresis=5,
                        repeat_hours=24, seen=DEFAULT_THRESHOLDS)
    viewer = make_user(Role.viewer)
    with pytest.raises(PermissionDenied):
        save_thresholds(session=session, actor=viewer.actor, warn=60, critical=80, full=100, hysteresis=5,
                        repeat_hours=24, seen=DEFAULT_THRESHOLDS)


def test_a_branch_scoped_operator_manages_only_its_branch_channels_not_chain_wide_settings(session, org,
                                                                                          make_user):
    from base.errors import PermissionDenied
    from core import settings_store
    from core.alerts import channels as channel_service
    from core.capacity.alert_settings import save_template, save_thresholds

    agency = make_user(Role.hq_operator, org["south"]).actor
    with pytest.raises(PermissionDenied) as error:
        save_thresholds(session=session, actor=agency, warn=60, critical=80, full=100, hysteresis=5, repeat_hours=24,
                        seen=DEFAULT_THRESHOLDS)
    assert error.value.key == "settings.chain_wide_only"
    with pytest.raises(PermissionDenied):
        save_template(session=session, actor=agency, text="{企微账号} 快满了")
    for key, value in (("capacity.default_limit", 9000), ("wecom.calls_per_minute", 100)):
        with pytest.raises(PermissionDenied):
            settings_store.save(session=session, actor=agency, key=key, value=value)
    with pytest.raises(PermissionDenied):
        channel_service.add_channel(session=session, actor=agency, kind="webhook", url="https://x.example/h")
    with pytest.raises(PermissionDenied):
        channel_service.add_channel(session=session, actor=agency, kind="webhook", url="https://x.example/h",
                                    branch_code="BJ01")
    own = channel_service.add_channel(session=session, actor=agency, kind="dingtalk",
                                      url="https://oapi.dingtalk.com/robot/send?access_token=t", branch_code="SH01")
    session.commit()
    assert own.branch_id == org["south"].id
    assert session.exec(select(SettingOverride)).all() == []
    # An unscoped HQ operator sets them.
    hq = make_user(Role.hq_operator).actor
    save_thresholds(session=session, actor=hq, warn=60, critical=80, full=100, hysteresis=5, repeat_hours=24,
                    seen=DEFAULT_THRESHOLDS)
    session.commit()
    assert settings_store.effective(session=session, key="capacity.warn_pct") == 60

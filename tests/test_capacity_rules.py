"""Alert rules: one alert per account and level per episode, hysteresis, level
jumps notify only the highest, unacknowledged critical/full repeat, and the
message uses the seed's wording."""

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import select

from core.alerts import log as alert_log
from core.capacity.evaluate import evaluate
from core.capacity.rules import Thresholds, decide
from core.errors import ConcurrentEdit
from core.timeutil import utcnow
from db.models import Account, AlertChannel, AlertDelivery, CapacityAlert, Role
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
    run(session, now + timedelta(hours=23))
    assert len(deliveries(session)) == 1
    assert run(session, now + timedelta(hours=24, minutes=1))["repeated"] == 1
    run(session, now + timedelta(hours=25))
    assert len(deliveries(session)) == 2
    operator = make_user(Role.hq_operator)
    alert = session.exec(select(CapacityAlert).where(CapacityAlert.level == "critical")).one()
    assert alert_log.acknowledge(session=session, actor=operator.actor, alert_versions={alert.id: alert.version}) == 1
    session.commit()
    run(session, now + timedelta(hours=60))
    assert len(deliveries(session)) == 2


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
    from core.capacity.alert_settings import save_template
    from core.errors import InvalidInput

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


def test_thresholds_must_be_ordered(session, make_user):
    from core.capacity.alert_settings import save_thresholds
    from core.errors import InvalidInput, PermissionDenied

    admin = make_user(Role.hq_admin)
    with pytest.raises(InvalidInput):
        save_thresholds(session=session, actor=admin.actor, warn=90, critical=80, full=100, hysteresis=5,
                        repeat_hours=24)
    viewer = make_user(Role.viewer)
    with pytest.raises(PermissionDenied):
        save_thresholds(session=session, actor=viewer.actor, warn=60, critical=80, full=100, hysteresis=5,
                        repeat_hours=24)

"""The 容量监控, 告警 and 告警设置 pages through AppTest, as each role."""

from datetime import timedelta

import pytest
from sqlmodel import select

from console.messages import t
from core.capacity.evaluate import evaluate
from core.timeutil import utcnow
from db.models import AlertChannel, CapacityAlert, CountSnapshot, Role, SettingOverride
from tests.support.apptest import run_app
from tests.support.capacity import bind_accounts


@pytest.fixture
def watched(session, org):
    accounts = bind_accounts(session, [("000101", "store000101", 4600, 5000), ("000201", "store000201", 3600, 5000),
                                       ("000102", "store000102", 100, 5000)])
    now = utcnow()
    for account in accounts.values():
        account.count_synced_at = now
        session.add(account)
        session.add(CountSnapshot(account_id=account.id, customer_count=account.customer_count - 700,
                                  taken_at=now - timedelta(days=7) + timedelta(minutes=5)))
    session.add(AlertChannel(name="总部群", kind="wecom", url="http://127.0.0.1:9/cgi-bin/webhook/send?key=hq"))
    session.commit()
    evaluate(session=session)
    session.commit()
    return accounts


def table(at, index=0):
    return at.dataframe[index].value


def test_operator_sees_every_account_riskiest_first_with_forecast(watched, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    at = run_app("capacity.py")
    assert not at.exception, at.exception
    assert at.title[0].value == t("capacity.title")
    rows = table(at)
    assert list(rows[t("capacity.col.userid")]) == ["store000101", "store000201", "store000102"]
    # 700 customers in 7 days: 100 a day; 400 left → 4 days.
    assert list(rows[t("capacity.col.growth")])[0] == pytest.approx(100.0, rel=0.01)
    assert list(rows[t("capacity.col.days_to_full")])[0] == pytest.approx(4.0, rel=0.01)
    assert len(at.get("progress")) == 3


def test_branch_manager_sees_only_the_own_branch(watched, org, make_user, as_user):
    as_user(make_user(Role.branch_manager, org["south"]))
    at = run_app("capacity.py")
    assert not at.exception, at.exception
    assert list(table(at)[t("capacity.col.userid")]) == ["store000201"]
    # No "sync now" for a branch manager.
    assert not [b for b in at.button if b.label == t("capacity.sync_now")]


def test_sync_now_queues_the_job(watched, make_user, as_user, session):
    as_user(make_user(Role.hq_operator))
    at = run_app("capacity.py")
    next(b for b in at.button if b.label == t("capacity.sync_now")).click().run()
    assert not at.exception, at.exception
    assert at.success[0].value == t("capacity.sync_queued")
    from core.scheduling.jobs import pending_request_ids

    assert pending_request_ids(session=session) == ["capacity.sync_counts"]


@pytest.mark.parametrize("role", [Role.branch_manager, Role.viewer])
def test_non_hq_roles_cannot_reach_alerts_or_settings(role, org, make_user, as_user):
    as_user(make_user(role, org["north"] if role == Role.branch_manager else None))
    at = run_app()
    for page in ("alerts.py", "alert_settings.py"):
        with pytest.raises(ValueError):
            at.switch_page(f"../pages/{page}")


def test_operator_acknowledges_an_alert(watched, make_user, as_user, session):
    as_user(make_user(Role.hq_operator))
    at = run_app("alerts.py")
    assert not at.exception, at.exception
    assert set(table(at)[t("alerts.col.account")]) == {"store000101", "store000201"}
    critical = session.exec(select(CapacityAlert).where(CapacityAlert.level == "critical")).one()
    at.multiselect(key="alerts_ack_ids").select(critical.id)
    next(b for b in at.button if b.label == t("alerts.ack_button")).click()
    at.run()
    assert not at.exception, at.exception
    assert at.success[0].value == t("alerts.acked", count=1)
    session.expire_all()
    assert session.get(CapacityAlert, critical.id).acknowledged_at is not None


def test_bad_template_is_refused_with_a_chinese_reason(watched, make_user, as_user, session):
    as_user(make_user(Role.hq_admin))
    at = run_app("alert_settings.py")
    assert not at.exception, at.exception
    at.text_area(key="template_text").input("{账号} 快满了")
    next(b for b in at.button if b.label == t("alert_settings.save_template")).click()
    at.run()
    assert "未知的占位符 {账号}" in at.error[0].value
    assert session.get(SettingOverride, "capacity.alert_template") is None


def test_thresholds_out_of_order_are_refused(watched, make_user, as_user, session):
    as_user(make_user(Role.hq_operator))
    at = run_app("alert_settings.py")
    at.number_input(key="th_warn").set_value(95)
    next(b for b in at.button if b.label == t("alert_settings.save_thresholds")).click()
    at.run()
    assert at.error[0].value == t("capacity.thresholds.order")
    assert session.get(SettingOverride, "capacity.warn_pct") is None


def test_add_channel_with_a_bad_url_says_why(watched, make_user, as_user, session):
    as_user(make_user(Role.hq_operator))
    at = run_app("alert_settings.py")
    at.text_input(key="channel_url").input("not a url")
    next(b for b in at.button if b.label == t("alert_settings.add")).click()
    at.run()
    assert at.error[0].value == t("alerts.channel.bad_url")
    assert len(session.exec(select(AlertChannel)).all()) == 1


def test_operator_sets_the_wecom_call_limit_and_the_default_capacity(watched, make_user, as_user, session):
    from core import settings_store

    as_user(make_user(Role.hq_operator))
    at = run_app("alert_settings.py")
    at.number_input(key="sync_calls").set_value(8000)
    at.number_input(key="sync_default_limit").set_value(20000)
    next(b for b in at.button if b.label == t("alert_settings.save_sync")).click()
    at.run()
    assert not at.exception and at.success[0].value == t("common.saved")
    session.expire_all()
    assert settings_store.effective(session=session, key="wecom.calls_per_minute") == 8000
    assert settings_store.effective(session=session, key="capacity.default_limit") == 20000

"""The 容量监控, 告警 and 告警设置 pages through AppTest, as each role."""

from datetime import timedelta

import pytest
from sqlmodel import select

from base.problems import problem
from base.timeutil import utcnow
from console.ui.text import md
from core.capacity.evaluate import evaluate
from db.models import AlertChannel, CapacityAlert, CountSnapshot, Role, SettingOverride
from i18n import t
from tests.support.apptest import run_app
from tests.support.capacity import bind_accounts
from tests.support.factories import find_store, make_account, make_binding


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


def test_a_full_replaced_account_ranks_after_the_accounts_entries_send_customers_to(
        watched, org, session, make_user, as_user):
    """换号 leaves the old, full account listed; it needs no action, the serving ones do."""
    old = make_account(session, "old000202", name="老号", count=5000, limit=5000)
    now = utcnow()
    make_binding(session, find_store(session, "000202"), old, started_at=now - timedelta(days=90),
                 ended_at=now - timedelta(days=1), end_reason="replaced")
    as_user(make_user(Role.hq_operator))
    at = run_app("capacity.py")
    assert not at.exception, at.exception
    rows = table(at)
    assert list(rows[t("capacity.col.userid")]) == ["store000101", "store000201", "store000102", "old000202"]
    assert list(rows[t("capacity.col.serving")]) == [t("common.yes")] * 3 + [t("common.no")]
    assert t("capacity.gauge_full_replaced") in [c.value for c in at.caption]


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
    # The sweep's progress shows on this page too (no sidecar has picked it up yet).
    assert at.get("progress") and t("capacity.sweep.queued") in [c.value for c in at.caption]


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


def test_add_channel_with_a_port_that_is_not_a_number_says_why(watched, make_user, as_user, session):
    as_user(make_user(Role.hq_admin))  # generic webhooks are the administrator's
    at = run_app("alert_settings.py")
    at.selectbox(key="channel_kind").set_value("webhook")
    at.text_input(key="channel_url").input("http://host:abc/hook")
    next(b for b in at.button if b.label == t("alert_settings.add")).click()
    at.run()
    assert not at.exception, at.exception
    assert at.error[0].value == md("alerts.channel.bad_url_reason", reason="Invalid port: 'abc'")
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


def test_alerts_page_says_plainly_when_no_channel_took_an_alert(org, session, make_user, as_user):
    bind_accounts(session, [("000101", "store000101", 3600, 5000)])
    evaluate(session=session)   # no channel at all
    session.commit()
    as_user(make_user(Role.hq_operator))
    at = run_app("alerts.py")
    assert not at.exception, at.exception
    assert at.warning[0].value == t("alerts.no_channel_warning", count=1)
    assert list(table(at)[t("alerts.col.notified")]) == [t("alerts.notified.no_channel")]


def test_alerts_page_shows_what_the_groups_were_actually_told(watched, session, make_user, as_user):
    from sqlalchemy import update

    from db.models import AlertDelivery

    critical = session.exec(select(CapacityAlert).where(CapacityAlert.level == "critical")).one()
    session.exec(update(AlertDelivery).where(AlertDelivery.alert_id == critical.id).values(status="sent"))
    session.commit()
    as_user(make_user(Role.hq_operator))
    at = run_app("alerts.py")
    assert not at.exception, at.exception
    notified = dict(zip(table(at)[t("alerts.col.account")], table(at)[t("alerts.col.notified")], strict=True))
    assert notified["store000101"].startswith(t("alerts.notified.sent", count=1))
    assert notified["store000201"].startswith(t("alerts.notified.pending", count=1))
    assert not at.warning


def test_demo_inbox_is_grouped_by_robot_and_says_it_lives_in_memory(org, session, make_user, as_user, monkeypatch):
    from core.alerts.outbox import deliver_due
    from tests.support.capacity import start_simulator

    sim = start_simulator()
    try:
        monkeypatch.setenv("WECOM_API_BASE", sim.base_url)
        from base.config import get_settings

        get_settings.cache_clear()
        bind_accounts(session, [("000201", "store000201", 3600, 5000)])
        session.add_all([AlertChannel(name="总部群", kind="wecom", url=f"{sim.base_url}/cgi-bin/webhook/send?key=hq"),
                         AlertChannel(name="上海群", kind="wecom", branch_id=org["south"].id,
                                      url=f"{sim.base_url}/cgi-bin/webhook/send?key=sh")])
        session.commit()
        evaluate(session=session)
        session.commit()
        assert deliver_due(engine=session.get_bind()).sent == 2
        as_user(make_user(Role.hq_operator))
        at = run_app("alerts.py")
        assert not at.exception, at.exception
        headers = [m.value for m in at.markdown if "条" in m.value and "企业微信群机器人" in m.value]
        assert sorted(headers) == sorted([t("alerts.inbox.robot", name="总部群", kind=t("channel_kind.wecom"), count=1),
                                          t("alerts.inbox.robot", name="上海群", kind=t("channel_kind.wecom"),
                                                count=1)])
        assert any("模拟器重启后会清空" in c.value for c in at.caption)
    finally:
        sim.stop()


def test_sidecar_section_shows_recent_runs_per_job(watched, session, make_user, as_user):
    from datetime import timedelta

    from db.models import JobRun

    now = utcnow()
    session.add_all([JobRun(job_id="alerts.deliver", holder="h1", started_at=now - timedelta(seconds=30 * n),
                            finished_at=now - timedelta(seconds=30 * n - 1), outcome="ok") for n in range(1, 6)]
                    + [JobRun(job_id="capacity.sync_counts", holder="dead", started_at=now - timedelta(minutes=20),
                              finished_at=now, outcome="interrupted", error=problem("jobs.interrupted_reason"))])
    session.commit()
    as_user(make_user(Role.hq_operator))
    at = run_app("capacity.py")
    assert not at.exception, at.exception
    latest = table(at, -2)
    assert sorted(latest[t("capacity.jobs.col.outcome")]) == sorted([t("job_outcome.ok"),
                                                                     t("job_outcome.interrupted")])
    at.selectbox(key="capacity_jobs_history").set_value("alerts.deliver").run()
    assert len(table(at, -1)) == 5


def test_a_branch_scoped_operator_sees_chain_wide_settings_read_only(watched, org, make_user, as_user, session):
    as_user(make_user(Role.hq_operator, org["south"]))
    at = run_app("alert_settings.py")
    assert not at.exception, at.exception
    assert at.info[0].value == t("alert_settings.chain_wide_readonly")
    assert not [b for b in at.button if b.label in (t("alert_settings.save_thresholds"),
                                                     t("alert_settings.save_template"))]
    # Channels: only the own branch can be chosen.
    assert at.selectbox(key="channel_branch").options == ["SH01 上海分公司"]


def test_serving_accounts_say_whether_their_store_can_switch(watched, session, make_user, as_user):
    from db.models import StandbyAccount

    session.add(StandbyAccount(store_id=find_store(session, "000101").id,
                               account_id=make_account(session, "spare101", status="standby").id))
    session.add(StandbyAccount(store_id=find_store(session, "000201").id,   # over its own warn level: no use
                               account_id=make_account(session, "busy201", status="standby", count=4000).id))
    session.commit()
    as_user(make_user(Role.hq_operator))
    at = run_app("capacity.py")
    assert not at.exception, at.exception
    rows = table(at)
    ready = dict(zip(rows[t("capacity.col.userid")], rows[t("capacity.col.standby")], strict=True))
    assert ready["store000101"] == t("standby.switch_ready")
    assert ready["store000201"] == t("standby.no_standby")
    assert ready["store000102"] == t("standby.no_standby")


def test_operator_sets_the_switch_level(watched, make_user, as_user, session):
    as_user(make_user(Role.hq_operator))
    at = run_app("alert_settings.py")
    at.number_input(key="switch_pct").set_value(0)
    next(b for b in at.button if b.label == t("alert_settings.save_switch")).click()
    at.run()
    assert not at.exception
    assert session.get(SettingOverride, "capacity.switch_pct").value_json == "0"

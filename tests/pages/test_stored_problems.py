"""Problems stored as key + params (an account's sync error, a channel's last
error, a job run's error) are shown in Chinese, and so are the words stored
before (common.legacy_text)."""

from datetime import timedelta

from base.problems import LEGACY_KEY, problem
from base.timeutil import utcnow
from db.models import AlertChannel, JobRun, Role
from i18n import t
from tests.support.apptest import run_app
from tests.support.capacity import bind_accounts


def column(at, name: str) -> list:
    """The values of the first table on the page that has this column."""
    return next(list(frame.value[name]) for frame in at.dataframe if name in frame.value.columns)


def test_the_capacity_page_shows_sync_and_job_errors_in_chinese(session, org, make_user, as_user):
    accounts = bind_accounts(session, [("000101", "store000101", 100, 5000), ("000201", "store000201", 200, 5000)])
    accounts["store000101"].sync_error = problem("wecom.reason.other", errcode=60001, errmsg="simulated error 60001")
    accounts["store000201"].sync_error = problem(LEGACY_KEY, text="旧版本保存的原因")
    session.add_all(accounts.values())
    now = utcnow()
    session.add(JobRun(job_id="capacity.sync_counts", holder="dead", started_at=now - timedelta(minutes=20),
                       finished_at=now, outcome="interrupted", error=problem("jobs.interrupted_reason")))
    session.commit()
    as_user(make_user(Role.hq_operator))
    at = run_app("capacity.py")
    assert not at.exception, at.exception
    assert sorted(column(at, t("capacity.col.sync_error"))) == sorted(
        ["企业微信返回错误 60001：simulated error 60001", "旧版本保存的原因"])
    assert column(at, t("capacity.jobs.col.error")) == [t("jobs.interrupted_reason")]


def test_the_alert_settings_page_shows_a_channels_last_error_in_chinese(session, org, make_user, as_user):
    session.add(AlertChannel(name="总部群", kind="wecom", url="http://127.0.0.1:9/cgi-bin/webhook/send?key=hq",
                             last_error=problem("alerts.robot.network", error="ConnectError: refused"),
                             last_error_at=utcnow()))
    session.commit()
    as_user(make_user(Role.hq_operator))
    at = run_app("alert_settings.py")
    assert not at.exception, at.exception
    [shown] = column(at, t("alert_settings.ch.last_error"))
    assert shown.endswith("无法连接机器人（ConnectError: refused）。")

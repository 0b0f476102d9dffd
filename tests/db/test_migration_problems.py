"""Migration 0010 on a database holding errors stored as words: each becomes
`common.legacy_text` with the words as its parameter and is shown as before;
the roll-up's old job id `metrics_rollup` becomes `funnel.rollup`. Downgrading
renders every stored problem back into Chinese and restores the old job id."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text, update
from sqlmodel import Session, col, select

from base.problems import LEGACY_KEY, problem
from base.timeutil import utcnow
from db.engine import get_engine
from db.migrate import alembic_config
from db.models import Account, AlertChannel, AlertDelivery, JobRequest, JobRun
from i18n import t
from tests.conftest import point_settings_at
from tests.support.problems import shown

OLD_WORDS = {
    "account": "企业微信系统繁忙（-1），重试 3 次仍失败。",
    "channel": "HTTP 502",
    "delivery": "上次发送未得到确认（调度进程在发送中途停止），已重新发送；群里可能收到两次。",
    "run": "SyncAborted: get_follow_user_list failed: errcode 40001: invalid credential",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_url(request, tmp_path: Path, monkeypatch) -> str:
    """A database at 0009 with errors stored as words and a roll-up run under its old id."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"migration_{tmp_path.name[-8:]}")
    point_settings_at(monkeypatch, url)
    command.upgrade(alembic_config(url), "0009_metrics")
    now = utcnow()
    # Plain SQL: the models follow the newest schema, this database is at 0009.
    with get_engine(url).begin() as connection:
        run = lambda sql, **params: connection.execute(text(sql), params)  # noqa: E731
        for userid, error in (("failing", OLD_WORDS["account"]), ("healthy", None)):
            run("INSERT INTO account (userid, name, capacity_limit, status, customer_count, sync_error, version, "
                "created_at, updated_at) VALUES (:userid, '', 5000, 'active', 0, :error, 1, :now, :now)",
                userid=userid, error=error, now=now)
        run("INSERT INTO alert_channel (name, kind, url, enabled, last_error, version, created_at) "
            "VALUES ('总部群', 'wecom', 'http://robot', :yes, :error, 1, :now)",
            yes=True, error=OLD_WORDS["channel"], now=now)
        run("INSERT INTO alert_delivery (channel_id, text, status, attempts, created_at, next_attempt_at, "
            "retry_until, last_error, version) SELECT id, '告警', 'pending', 0, :now, :now, :until, :error, 1 "
            "FROM alert_channel", now=now, until=now + timedelta(hours=24), error=OLD_WORDS["delivery"])
        for job_id, outcome, error in (("capacity.sync_counts", "failed", OLD_WORDS["run"]),
                                       ("metrics_rollup", "ok", None)):
            run("INSERT INTO jobrun (job_id, holder, started_at, outcome, error) "
                "VALUES (:job_id, '', :now, :outcome, :error)", job_id=job_id, now=now, outcome=outcome, error=error)
        run("INSERT INTO jobrequest (job_id, requested_at) VALUES ('metrics_rollup', :now)", now=now)
    return url


def stored(session: Session) -> dict[str, str | None]:
    session.expire_all()
    accounts = dict(session.exec(select(Account.userid, Account.sync_error)).all())
    return {"account": accounts["failing"], "healthy": accounts["healthy"],
            "channel": session.exec(select(AlertChannel.last_error)).one(),
            "delivery": session.exec(select(AlertDelivery.last_error)).one(),
            "run": session.exec(select(JobRun.error).where(JobRun.job_id == "capacity.sync_counts")).one()}


def job_ids(session: Session) -> list[list[str]]:
    return [sorted(session.exec(select(JobRun.job_id)).all()), list(session.exec(select(JobRequest.job_id)).all())]


def test_upgrade_keeps_old_words_as_legacy_problems_and_downgrade_renders_them_back(old_url):
    command.upgrade(alembic_config(old_url), "0010_problems")
    engine = get_engine(old_url)
    with Session(engine) as session:
        after = stored(session)
        assert after.pop("healthy") is None
        assert {name: json.loads(text) for name, text in after.items()} == {
            name: {"key": LEGACY_KEY, "params": {"text": words}} for name, words in OLD_WORDS.items()}
        assert {name: shown(text) for name, text in after.items()} == OLD_WORDS
        assert job_ids(session) == [["capacity.sync_counts", "funnel.rollup"], ["funnel.rollup"]]
        # Written by the new version: a key and its parameters.
        session.exec(update(Account).where(col(Account.userid) == "failing").values(
            sync_error=problem("wecom.reason.other", errcode=60001, errmsg="simulated error 60001")))
        session.commit()
    command.downgrade(alembic_config(old_url), "0009_metrics")
    with Session(engine) as session:
        before = stored(session)
        assert before == {**OLD_WORDS, "healthy": None,
                          "account": t("wecom.reason.other", errcode=60001, errmsg="simulated error 60001")}
        assert job_ids(session) == [["capacity.sync_counts", "metrics_rollup"], ["metrics_rollup"]]

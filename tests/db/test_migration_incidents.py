"""Migration 0016 on a database holding capacity alerts: they keep their account,
count and limit; incidents (no account, a store or nothing) can then be stored
and are one episode per store; downgrading drops the incidents and their outbox
messages, keeps every capacity alert, and upgrading again works."""

from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from base.timeutil import utcnow
from db.engine import get_engine
from db.migrate import alembic_config
from tests.conftest import point_settings_at


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_url(request, tmp_path: Path, monkeypatch) -> str:
    """A database at 0015 with one capacity alert and its outbox message."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"incidents_{tmp_path.name[-8:]}")
    point_settings_at(monkeypatch, url)
    command.upgrade(alembic_config(url), "0015_import_runs")
    now = utcnow()
    with get_engine(url).begin() as connection:
        run = lambda sql, **params: connection.execute(text(sql), params)  # noqa: E731
        run("INSERT INTO branch (code, name, created_at) VALUES ('BJ', '北京分公司', :now)", now=now)
        run("INSERT INTO store (branch_id, crm_store_id, name, status, version, created_at, updated_at) "
            "SELECT id, '000101', '北京朝阳大悦城店', 'open', 1, :now, :now FROM branch", now=now)
        run("INSERT INTO account (userid, name, capacity_limit, status, customer_count, version, created_at, "
            "updated_at) VALUES ('kf01', '客服01', 5000, 'active', 3600, 1, :now, :now)", now=now)
        run("INSERT INTO capacity_alert (account_id, level, level_pct, customer_count, capacity_limit, opened_at, "
            "notified, notify_count, version) SELECT id, 'warn', 70, 3600, 5000, :now, :yes, 1, 1 FROM account",
            now=now, yes=True)
        run("INSERT INTO alert_channel (name, kind, url, enabled, version, created_at) "
            "VALUES ('总部群', 'wecom', 'http://robot', :yes, 1, :now)", yes=True, now=now)
        run("INSERT INTO alert_delivery (alert_id, channel_id, text, status, attempts, created_at, next_attempt_at, "
            "retry_until, version) SELECT capacity_alert.id, alert_channel.id, '预警', 'pending', 0, :now, :now, "
            ":until, 1 FROM capacity_alert, alert_channel", now=now, until=now + timedelta(hours=24))
    return url


def add_incident(connection, level: str, store: bool) -> None:
    connection.execute(text(
        "INSERT INTO capacity_alert (level, level_pct, store_id, detail, opened_at, notified, notify_count, version) "
        "VALUES (:level, 0, " + ("(SELECT id FROM store)" if store else "NULL") + ", '{}', :now, :yes, 1, 1)"),
        {"level": level, "now": utcnow(), "yes": True})


def test_incidents_come_and_go_with_the_migration(old_url):
    config = alembic_config(old_url)
    command.upgrade(config, "0016_code_incidents")
    engine = get_engine(old_url)
    with engine.begin() as connection:
        assert connection.execute(text("SELECT account_id, customer_count, capacity_limit, store_id "
                                       "FROM capacity_alert")).one()[1:] == (3600, 5000, None)
        add_incident(connection, "code_stale", store=True)
        add_incident(connection, "links_quota_low", store=False)
        connection.execute(text("INSERT INTO alert_delivery (alert_id, channel_id, text, status, attempts, "
                                "created_at, next_attempt_at, retry_until, version) SELECT capacity_alert.id, "
                                "alert_channel.id, '活码', 'pending', 0, :now, :now, :now, 1 FROM capacity_alert, "
                                "alert_channel WHERE capacity_alert.level = 'code_stale'"), {"now": utcnow()})
    # one open episode per store and level
    with pytest.raises(IntegrityError), engine.begin() as connection:
        add_incident(connection, "code_stale", store=True)
    engine.dispose()

    command.downgrade(config, "0015_import_runs")
    engine = get_engine(old_url)
    with engine.begin() as connection:
        assert connection.execute(text("SELECT level, customer_count FROM capacity_alert")).all() == [("warn", 3600)]
        assert connection.execute(text("SELECT text FROM alert_delivery")).scalars().all() == ["预警"]
        with pytest.raises(IntegrityError), connection.begin_nested():   # an account is required again
            connection.execute(text(
                "INSERT INTO capacity_alert (level, level_pct, customer_count, capacity_limit, opened_at, notified, "
                "notify_count, version) VALUES ('no_standby', 0, 0, 0, :now, :yes, 1, 1)"),
                {"now": utcnow(), "yes": True})
    engine.dispose()
    command.upgrade(config, "head")

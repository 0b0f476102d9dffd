"""`add-channel --kind wecom_app`: members and branch managers as recipients,
with Chinese reasons for what cannot be a recipient list."""

from sqlmodel import select

from base.config import get_settings
from console.cli import main as cli
from db.models import AlertChannel, AuditEntry


def test_add_channel_for_app_messages_to_members_and_branch_managers(db_url, org, session, monkeypatch, capsys):
    monkeypatch.setenv("WECOM_AGENT_ID", "1000002")
    get_settings.cache_clear()
    assert cli(["add-channel", "--kind", "wecom_app", "--to", "ops.lead|WangJL", "--to-branch-managers",
                "--branch", "SH01", "--name", "上海经理"]) == 0
    assert "ops.lead|WangJL" in capsys.readouterr().out
    assert cli(["add-channel", "--kind", "wecom_app", "--to-branch-managers"]) == 0
    rows = session.exec(select(AlertChannel).order_by(AlertChannel.id)).all()
    assert [(c.kind, c.name, c.recipients, c.to_branch_managers, c.branch_id, c.url) for c in rows] == [
        ("wecom_app", "上海经理", "ops.lead|WangJL", True, org["south"].id, ""),
        ("wecom_app", "企业微信应用消息", None, True, None, "")]
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "alert_channel.add")).first()
    assert '"members": ["ops.lead", "WangJL"]' in entry.after_json

    assert cli(["add-channel", "--kind", "wecom_app"]) == 1
    assert "至少要有一位接收成员" in capsys.readouterr().err
    assert cli(["add-channel", "--kind", "wecom_app", "--to", "王 经理"]) == 1
    assert "成员 userid 不合法" in capsys.readouterr().err
    assert cli(["add-channel", "--kind", "wecom", "--to", "ops.lead",
                "--url", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"]) == 1
    assert "只适用于企业微信应用消息渠道" in capsys.readouterr().err
    session.expire_all()
    assert len(session.exec(select(AlertChannel)).all()) == 2


def test_add_channel_for_app_messages_needs_the_agent_id(db_url, session, monkeypatch, capsys):
    monkeypatch.setenv("WECOM_AGENT_ID", "")
    get_settings.cache_clear()
    assert cli(["add-channel", "--kind", "wecom_app", "--to", "ops.lead"]) == 1
    assert "WECOM_AGENT_ID" in capsys.readouterr().err
    assert session.exec(select(AlertChannel)).all() == []

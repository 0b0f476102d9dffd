"""`create-user --wecom-userid`: the link is stored and audited; a member already
linked to another user (in any letter case) is refused with nothing written."""

import os
import subprocess
import sys

from sqlmodel import select

from base.config import PROJECT_ROOT as ROOT
from db.models import AuditEntry, User


def create_user(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console", "create-user", *args, "--password-stdin"], cwd=ROOT,
                          input="long-enough-pw\n", text=True, capture_output=True, timeout=120,
                          env={**os.environ, "DATABASE_URL": db_url})


def test_create_user_links_the_wecom_member_once(db_url, org, session):
    created = create_user(db_url, "--username", "bj_manager", "--role", "branch_manager", "--branch", "BJ01",
                          "--wecom-userid", "WangJL")
    assert created.returncode == 0, created.stderr
    assert "WangJL" in created.stdout
    user = session.exec(select(User).where(User.username == "bj_manager")).one()
    assert user.wecom_userid == "WangJL"
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "user.create")).one()
    assert '"wecom_userid": "WangJL"' in entry.after_json

    duplicate = create_user(db_url, "--username", "other", "--role", "viewer", "--wecom-userid", "wangjl")
    assert duplicate.returncode == 1
    assert "企业微信成员 wangjl 已关联其他控制台用户" in duplicate.stderr
    session.expire_all()
    assert session.exec(select(User).where(User.username == "other")).first() is None


def test_create_user_refuses_a_malformed_userid(db_url, session):
    result = create_user(db_url, "--username", "someone", "--role", "viewer", "--wecom-userid", "王 经理")
    assert result.returncode == 1 and "企业微信成员账号须为" in result.stderr
    assert session.exec(select(User).where(User.username == "someone")).first() is None

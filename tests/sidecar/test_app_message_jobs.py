"""The sidecar end to end with an app-message channel: sync → evaluate →
deliver, and the BJ-style branch manager finds the alert as a WeCom card."""

import os
import subprocess
import sys

from sqlmodel import Session, select

from base.config import PROJECT_ROOT as ROOT
from base.config import get_settings
from core.alerts import channels as channel_service
from db.models import AlertDelivery, Role
from tests.support.capacity import bind_accounts, start_simulator


def test_a_branch_account_crossing_a_level_reaches_its_linked_manager_as_an_app_message(
        db_url, engine, session, org, make_user, monkeypatch):
    sim = start_simulator()
    try:
        env = {"WECOM_API_BASE": sim.base_url, "WECOM_CORP_ID": sim.corp_id, "WECOM_SECRET": sim.secret,
               "WECOM_AGENT_ID": sim.agent_id, "CONSOLE_BASE_URL": "https://console.example.com"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        bind_accounts(session, [("000101", "store000101", 3400, 5000)])
        sim.set_customers({"store000101": 3600})
        sim.set_members({"store000101": {"name": "一号店"}, "bj.manager": {"name": "北区经理"}})
        make_user(Role.branch_manager, org["north"], wecom_userid="bj.manager")
        operator = make_user(Role.hq_operator)
        channel_service.add_channel(session=session, actor=operator.actor, kind="wecom_app", to_branch_managers=True,
                                    branch_code=org["north"].code)
        session.commit()
        run = subprocess.run([sys.executable, "scheduler.py", "--once", "--wait", "60"], cwd=ROOT,
                             env={**os.environ, **env, "DATABASE_URL": db_url}, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        [card] = sim.app_messages()
        assert (card.userid, card.url, card.btntxt) == (
            "bj.manager", "https://console.example.com/capacity", "查看详情")
        assert "store000101" in card.description
        with Session(engine) as fresh:
            [delivery] = fresh.exec(select(AlertDelivery)).all()
        assert (delivery.status, delivery.recipients) == ("sent", "bj.manager")
    finally:
        sim.stop()

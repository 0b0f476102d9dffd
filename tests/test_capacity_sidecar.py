"""The sidecar end to end: sync → evaluate → deliver against the simulator;
two sidecars and only one acts; a crash between evaluating and delivering
still delivers the alert after restart, exactly once."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import select

import scheduler
from core.timeutil import utcnow
from db.models import AlertChannel, AlertDelivery, CapacityAlert, JobRun, SchedulerLease
from tests.support.capacity import bind_accounts, start_simulator

ROOT = Path(__file__).resolve().parents[1]
CAPACITY_JOBS = ["capacity.sync_counts", "capacity.evaluate", "alerts.deliver"]


@pytest.fixture
def sim():
    simulator = start_simulator()
    yield simulator
    simulator.stop()


@pytest.fixture
def setup(session, org, sim, monkeypatch):
    bind_accounts(session, [("000101", "store000101", 3400, 5000), ("000201", "store000201", 1000, 5000)])
    sim.set_customers({"store000101": 3600, "store000201": 1000})
    session.add(AlertChannel(name="总部群", kind="wecom", url=f"{sim.base_url}/cgi-bin/webhook/send?key=hq"))
    session.commit()
    env = {"WECOM_API_BASE": sim.base_url, "WECOM_CORP_ID": sim.corp_id, "WECOM_SECRET": sim.secret}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from core.config import get_settings

    get_settings.cache_clear()
    return env


def run_once(db_url: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "scheduler.py", "--once", "--wait", "60"], cwd=ROOT,
                            env={**os.environ, **env, "DATABASE_URL": db_url},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_two_sidecars_only_one_acts_and_the_alert_arrives_once(db_url, session, setup, sim):
    first, second = run_once(db_url, setup), run_once(db_url, setup)
    outputs = [process.communicate(timeout=120)[0].decode() for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    runs = session.exec(select(JobRun).where(JobRun.job_id.in_(CAPACITY_JOBS)).order_by(JobRun.id)).all()
    holders = [run.holder for run in runs]
    # Each sidecar ran the whole set while holding the lease; never interleaved.
    assert len(set(holders)) == 2 and holders == sorted(holders, key=holders.index)
    assert holders[:3] == [holders[0]] * 3 and holders[3:] == [holders[3]] * 3
    assert holders[0] != holders[3]
    assert runs[2].finished_at <= runs[3].started_at
    texts = [m.text.splitlines()[0] for m in sim.messages()]
    assert texts == ["北京朝阳大悦城店客服(账号:store000101)客户容量已达到70%,请及时处理。"]


def test_waiting_sidecar_does_nothing_until_it_takes_over(db_url, session, setup, sim):
    acting, waiting = scheduler.Sidecar(), scheduler.Sidecar()
    assert acting.renew_lease() and not waiting.renew_lease()
    for job_id in CAPACITY_JOBS:
        waiting.run(job_id)
    assert session.exec(select(JobRun)).all() == []
    assert sim.calls["gettoken"] == 0 and sim.messages() == []
    # The acting one stops renewing (killed): once its lease has expired the other acts.
    session.exec(update(SchedulerLease).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert waiting.renew_lease() and not acting.renew_lease()
    for job_id in CAPACITY_JOBS:
        assert waiting.run(job_id)
    assert {run.holder for run in session.exec(select(JobRun)).all()} == {waiting.holder}
    assert len(sim.messages()) == 1


def test_crash_between_evaluating_and_delivering_loses_nothing(db_url, session, setup, sim):
    crashed = scheduler.Sidecar()
    assert crashed.renew_lease()
    assert crashed.run("capacity.sync_counts") and crashed.run("capacity.evaluate")
    # Killed here: no delivery yet, the lease is left to expire.
    assert sim.messages() == []
    assert [d.status for d in session.exec(select(AlertDelivery)).all()] == ["pending"]
    session.exec(update(SchedulerLease).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    restarted = run_once(db_url, setup)
    output = restarted.communicate(timeout=120)[0].decode()
    assert restarted.returncode == 0, output
    assert len(sim.messages()) == 1 and "store000101" in sim.messages()[0].text
    session.expire_all()
    assert [d.status for d in session.exec(select(AlertDelivery)).all()] == ["sent"]
    assert len(session.exec(select(CapacityAlert)).all()) == 1


def test_robot_down_during_the_run_keeps_the_alert_for_later(db_url, session, setup, sim):
    from core.wecom.simulator import Fault

    sim.inject("webhook/send", Fault(http_status=503))
    process = run_once(db_url, setup)
    assert process.wait(timeout=120) == 0
    session.expire_all()
    delivery = session.exec(select(AlertDelivery)).one()
    assert (delivery.status, delivery.last_error) == ("pending", "HTTP 503") and sim.messages() == []


def test_refused_secret_fails_the_sync_job_and_the_sidecar_says_so(db_url, session, setup, sim):
    process = run_once(db_url, {**setup, "WECOM_SECRET": "rotated-elsewhere"})
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 1, output
    run = session.exec(select(JobRun).where(JobRun.job_id == "capacity.sync_counts")).one()
    assert run.outcome == "failed" and "40001" in run.error

"""The sidecar end to end: sync → evaluate → deliver against the simulator;
two sidecars and only one acts, also while a long run outlasts the lease's
30 seconds; a sidecar that lost the lease stops; SIGTERM lets the running job
finish; "sync now"; a crash (in-process, or kill -9 of a real process mid-send)
still delivers the alert after restart."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

import scheduler
from base.config import PROJECT_ROOT as ROOT
from base.timeutil import utcnow
from core.alerts.outbox import enqueue
from core.auth.permissions import SYSTEM
from core.scheduling import jobs, lease
from db.models import AlertChannel, AlertDelivery, CapacityAlert, JobRequest, JobRun, SchedulerLease
from demo.simulator import Fault
from tests.support.capacity import bind_accounts, start_simulator
from tests.support.problems import shown

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
    from base.config import get_settings

    get_settings.cache_clear()
    return env


def run_once(db_url: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "scheduler.py", "--once", "--wait", "60"], cwd=ROOT,
                            env={**os.environ, **env, "DATABASE_URL": db_url},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def run_forever(db_url: str, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "scheduler.py"], cwd=ROOT,
                            env={**os.environ, **env, "DATABASE_URL": db_url},
                            stdout=log_path.open("wb"), stderr=subprocess.STDOUT)


def wait_for(check, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def read(engine, query):
    with Session(engine) as fresh:
        return fresh.exec(query).all()


def expire_lease(session) -> None:
    """The lease's 30 seconds pass without renewal (the holder is dead)."""
    session.exec(update(SchedulerLease).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()


@pytest.fixture
def fast_lease(monkeypatch):
    """A 2-second lease renewed every 0.3 s, so that a run outlasting the lease takes seconds, not minutes."""
    monkeypatch.setattr(lease, "LEASE_TTL", timedelta(seconds=2))
    monkeypatch.setattr(scheduler, "LEASE_EVERY_SECONDS", 0.3)
    monkeypatch.setattr("core.alerts.outbox.CLAIM_MARGIN", timedelta(seconds=0.5))
    monkeypatch.setattr("core.alerts.jobs.quiet_wait", lambda _now: 0.0)


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
    assert acting.heartbeat() and not waiting.heartbeat()
    for job_id in CAPACITY_JOBS:
        waiting.run(job_id)
    assert session.exec(select(JobRun)).all() == []
    assert sim.calls["gettoken"] == 0 and sim.messages() == []
    # The acting one stops renewing (killed): once its lease has expired the other acts.
    session.exec(update(SchedulerLease).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert waiting.heartbeat() and not acting.heartbeat()
    for job_id in CAPACITY_JOBS:
        assert waiting.run(job_id)
    assert {run.holder for run in session.exec(select(JobRun)).all()} == {waiting.holder}
    assert len(sim.messages()) == 1


def test_crash_between_evaluating_and_delivering_loses_nothing(db_url, session, setup, sim):
    crashed = scheduler.Sidecar()
    assert crashed.heartbeat()
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
    from demo.simulator import Fault

    sim.inject("webhook/send", Fault(http_status=503))
    process = run_once(db_url, setup)
    assert process.wait(timeout=120) == 0
    session.expire_all()
    delivery = session.exec(select(AlertDelivery)).one()
    assert (delivery.status, shown(delivery.last_error)) == ("pending", "HTTP 503") and sim.messages() == []


def test_refused_secret_fails_the_sync_job_and_the_sidecar_says_so(db_url, session, setup, sim):
    process = run_once(db_url, {**setup, "WECOM_SECRET": "rotated-elsewhere"})
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 1, output
    run = session.exec(select(JobRun).where(JobRun.job_id == "capacity.sync_counts")).one()
    assert run.outcome == "failed" and "40001" in shown(run.error)


def test_a_once_run_longer_than_the_lease_keeps_it_and_a_waiting_sidecar_never_acts_beside_it(
        db_url, session, setup, sim, fast_lease):
    # The robot holds the first answer for 3 s: the --once run outlasts the 2-second lease.
    sim.inject("webhook/send", Fault(delay_seconds=3.0, accept=True))
    first, second = scheduler.Sidecar(), scheduler.Sidecar()
    results: dict[str, int] = {}
    running = threading.Thread(target=lambda: results.setdefault("first", first.run_once(wait_seconds=1)))
    running.start()
    wait_for(lambda: read(session.get_bind(), select(AlertDelivery).where(AlertDelivery.status == "sending")),
             what="the first sidecar sending")
    waiting = threading.Thread(target=lambda: results.setdefault("second", second.run_once(wait_seconds=30)))
    waiting.start()
    running.join(60)
    waiting.join(60)
    assert results == {"first": 0, "second": 0}
    runs = session.exec(select(JobRun).order_by(JobRun.id)).all()
    first_runs = [r for r in runs if r.holder == first.holder]
    second_runs = [r for r in runs if r.holder == second.holder]
    # The second sidecar acted only after the first had finished everything.
    assert first_runs and second_runs and max(r.finished_at for r in first_runs) <= min(
        r.started_at for r in second_runs)
    assert all(r.outcome == "ok" for r in runs)
    assert len(sim.messages()) == 1


def test_a_sidecar_that_lost_the_lease_stops_sending(db_url, engine, session, setup, sim, fast_lease):
    for number in range(3):
        enqueue(session=session, alert_id=None, branch_id=None, text=f"第{number}条")
    session.commit()
    sim.inject("webhook/send", Fault(delay_seconds=1.5, accept=True))
    old, new = scheduler.Sidecar(), scheduler.Sidecar()
    assert old.heartbeat()
    delivering = threading.Thread(target=old.run, args=["alerts.deliver"])
    delivering.start()
    wait_for(lambda: sim.messages(), what="the first message")
    # While the old holder waits for the robot, its lease lapses (its renewals
    # stalled) and the other sidecar takes over.
    expire_lease(session)
    assert new.heartbeat()
    delivering.join(30)
    assert [m.text for m in sim.messages()] == ["第0条"]
    run = session.exec(select(JobRun).where(JobRun.holder == old.holder)).one()
    assert run.outcome == "interrupted" and "LeaseLost" in shown(run.error)
    assert new.heartbeat() and new.run("alerts.deliver")
    assert sorted(m.text for m in sim.messages()) == ["第0条", "第1条", "第2条"]
    assert {d.status for d in read(engine, select(AlertDelivery))} == {"sent"}


def test_a_lease_renewal_that_fails_stops_the_sidecar_from_acting(db_url, session, setup, sim, monkeypatch):
    sidecar = scheduler.Sidecar()
    assert sidecar.heartbeat() and sidecar.acting.is_set()

    def locked(**_kwargs):
        raise OperationalError("UPDATE schedulerlease", {}, Exception("database is locked"))

    monkeypatch.setattr(lease, "try_acquire", locked)
    assert not sidecar.heartbeat()
    assert not sidecar.acting.is_set()
    assert sidecar.run("capacity.sync_counts")   # a waiting sidecar's scheduled run: nothing done, no failure
    assert session.exec(select(JobRun)).all() == [] and sim.calls["gettoken"] == 0


def test_a_run_now_request_picked_by_a_sidecar_killed_before_running_it_is_run_by_the_next(
        db_url, session, setup, sim):
    jobs.request_run(session=session, actor=SYSTEM, job_id="capacity.sync_counts")
    session.commit()
    killed = scheduler.Sidecar()
    assert killed.heartbeat()
    # It picked the request, then died before running the job.
    assert list(jobs.take_requests(session=session, token=killed.fence.token)) == ["capacity.sync_counts"]
    assert jobs.pending_request_ids(session=session) == ["capacity.sync_counts"]
    expire_lease(session)
    successor = scheduler.Sidecar()
    assert successor.heartbeat()
    successor.run_requests()
    session.expire_all()
    request = session.exec(select(JobRequest)).one()
    assert request.done_at is not None and request.picked_by == successor.fence.token
    assert [(r.job_id, r.holder) for r in session.exec(select(JobRun))] == [("capacity.sync_counts",
                                                                           successor.holder)]
    assert jobs.pending_request_ids(session=session) == []


def test_runs_of_a_killed_sidecar_are_marked_interrupted_when_another_takes_over(db_url, session, setup):
    session.add(JobRun(job_id="capacity.sync_counts", holder="old-host:4242:deadbeef"))
    session.add(JobRun(job_id="alerts.deliver", holder="old-host:4242:deadbeef", outcome="ok",
                       finished_at=utcnow()))
    session.commit()
    successor = scheduler.Sidecar()
    assert successor.heartbeat()
    session.expire_all()
    runs = {r.job_id: r for r in session.exec(select(JobRun))}
    assert runs["capacity.sync_counts"].outcome == "interrupted" and runs["capacity.sync_counts"].finished_at
    assert runs["alerts.deliver"].outcome == "ok"
    history = jobs.runs_by_job(session=session)
    assert set(history) == {"capacity.sync_counts", "alerts.deliver"}


def test_sigterm_lets_the_running_job_finish_then_the_sidecar_exits(db_url, engine, setup, sim, tmp_path):
    # The robot answers after 4 s, so the delivery job is mid-send when the signal comes.
    sim.inject("webhook/send", Fault(delay_seconds=4.0, accept=True))
    process = run_forever(db_url, setup, tmp_path / "sidecar.log")
    try:
        wait_for(lambda: read(engine, select(AlertDelivery).where(AlertDelivery.status == "sending")),
                 what="the delivery job sending")
        signalled_at = utcnow()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, (tmp_path / "sidecar.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
    deliver = read(engine, select(JobRun).where(JobRun.job_id == "alerts.deliver"))
    assert [(r.outcome, r.finished_at is not None) for r in deliver] == [("ok", True)]
    assert [d.status for d in read(engine, select(AlertDelivery))] == ["sent"]
    # Nothing new started after the signal, and the lease was handed back.
    assert all(r.started_at <= signalled_at for r in read(engine, select(JobRun)))
    assert read(engine, select(SchedulerLease))[0].expires_at < utcnow()
    assert "finishing the running job" in (tmp_path / "sidecar.log").read_text()


def test_a_queued_sync_now_is_picked_up_and_run_by_the_sidecar(db_url, engine, session, setup, sim, tmp_path):
    jobs.request_run(session=session, actor=SYSTEM, job_id="capacity.sync_counts")
    session.commit()
    process = run_forever(db_url, setup, tmp_path / "sidecar.log")
    try:
        request = wait_for(lambda: [r for r in read(engine, select(JobRequest)) if r.done_at], timeout=60,
                           what="the request done")[0]
        # The scheduled start runs too, before or after the request (the starts are staggered by job order).
        wait_for(lambda: len(read(engine, select(JobRun).where(JobRun.job_id == "capacity.sync_counts"))) >= 2,
                 timeout=60, what="the scheduled sync")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    syncs = read(engine, select(JobRun).where(JobRun.job_id == "capacity.sync_counts").order_by(JobRun.id))
    # The scheduled sync ran at start (and ticks every 15 s); the request made it run once more.
    assert len(syncs) >= 2 and all(r.outcome == "ok" for r in syncs)
    # The request's own run: the first to start once it was picked up, finished before it was marked done.
    requested = next(r for r in syncs if r.started_at >= request.picked_at)
    assert request.done_at >= requested.finished_at


@pytest.mark.parametrize("robot_took_it", [True, False], ids=["robot-took-it", "robot-hung"])
def test_kill_9_mid_send_then_restart_the_alert_still_arrives(db_url, engine, session, setup, sim, robot_took_it):
    sim.inject("webhook/send", Fault(delay_seconds=60.0, accept=robot_took_it))
    killed = run_once(db_url, setup)
    try:
        wait_for(lambda: read(engine, select(AlertDelivery).where(AlertDelivery.status == "sending")),
                 what="the sidecar sending")
    finally:
        killed.kill()
        killed.wait(timeout=10)
    expire_lease(session)
    restarted = run_once(db_url, setup)
    output = restarted.communicate(timeout=120)[0].decode()
    assert restarted.returncode == 0, output
    texts = [m.text for m in sim.messages()]
    assert texts and all("store000101" in text for text in texts), (output, read(engine, select(AlertDelivery)))
    # At least once: sent again after the restart; a copy the robot took before the kill is a counted duplicate.
    assert len(texts) == (2 if robot_took_it else 1)
    delivery = read(engine, select(AlertDelivery))[0]
    assert (delivery.status, delivery.uncertain_sends) == ("sent", 1)
    killed_runs = [r for r in read(engine, select(JobRun)) if r.outcome != "ok"]
    assert [(r.job_id, r.outcome) for r in killed_runs] == [("alerts.deliver", "interrupted")]

"""The sidecar's contact-code jobs: `codes.sync` after the switch and before the
evaluation, `codes.reconcile` daily, both requestable; a binding change queues
one code sync; a run against the simulator makes the store's code."""

from sqlmodel import select

from base.config import get_settings
from core.codes.service import request_code_sync
from core.scheduling.jobs import JobContext, load_jobs, run_job
from db.models import ContactCode, JobRequest, JobRun
from tests.support.capacity import start_simulator
from tests.support.factories import bind


def test_the_code_jobs_are_in_order_and_requestable():
    specs = {spec.id: spec for spec in load_jobs()}
    order = [spec.id for spec in load_jobs()]
    assert order.index("capacity.switch") < order.index("codes.sync") < order.index("capacity.evaluate")
    assert specs["codes.sync"].requestable and specs["codes.reconcile"].requestable
    assert specs["codes.reconcile"].interval_seconds == 24 * 3600


def test_a_binding_change_queues_one_code_sync(session):
    request_code_sync(session=session)
    request_code_sync(session=session)
    session.commit()
    assert [r.job_id for r in session.exec(select(JobRequest)).all()] == ["codes.sync"]


def test_the_jobs_make_and_check_codes_against_wecom(engine, session, org, monkeypatch):
    specs = {spec.id: spec for spec in load_jobs()}
    sim = start_simulator()
    try:
        monkeypatch.setenv("WECOM_API_BASE", sim.base_url)
        monkeypatch.setenv("WECOM_CORP_ID", sim.corp_id)
        monkeypatch.setenv("WECOM_SECRET", sim.secret)
        get_settings.cache_clear()
        sim.set_customers({"kf01": 0})
        bind(session, "000101", "kf01", code=False)
        assert run_job(specs["codes.sync"], JobContext(engine=engine, holder="test"))
        config_id = session.exec(select(ContactCode.config_id)).one()
        assert config_id in sim.codes.ways
        sim.codes.delete_elsewhere(config_id)
        assert run_job(specs["codes.reconcile"], JobContext(engine=engine, holder="test"))
    finally:
        sim.stop()
    session.expire_all()
    remade = session.exec(select(ContactCode.config_id)).one()
    assert remade != config_id and remade in sim.codes.ways
    run = session.exec(select(JobRun).where(JobRun.job_id == "codes.reconcile")).one()
    assert '"gone": 1' in (run.figures_json or "") and '"created": 1' in (run.figures_json or "")


def test_without_wecom_configured_the_sync_says_so(engine, session, monkeypatch):
    monkeypatch.setenv("WECOM_CORP_ID", "")
    get_settings.cache_clear()
    spec = {s.id: s for s in load_jobs()}["codes.sync"]
    assert run_job(spec, JobContext(engine=engine, holder="test"))
    run = session.exec(select(JobRun).where(JobRun.job_id == "codes.sync")).one()
    assert "jobs.skipped_no_wecom" in (run.figures_json or "")

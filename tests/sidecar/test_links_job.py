"""The sidecar's `codes.links` job: registered after `codes.sync`, requestable, and
making a store's link against the simulator in one run."""

from sqlmodel import select

from base.config import get_settings
from core import settings_store
from core.auth.permissions import system_actor
from core.scheduling.jobs import JobContext, load_jobs, run_job
from db.models import ContactCode, JobRun
from tests.support.capacity import start_simulator
from tests.support.factories import bind


def test_links_job_runs_after_the_code_sync_and_makes_links(engine, session, org, monkeypatch):
    specs = {spec.id: spec for spec in load_jobs()}
    order = [spec.id for spec in load_jobs()]
    assert specs["codes.links"].requestable
    assert order.index("codes.sync") < order.index("codes.links") < order.index("capacity.evaluate")
    sim = start_simulator()
    try:
        monkeypatch.setenv("WECOM_API_BASE", sim.base_url)
        monkeypatch.setenv("WECOM_CORP_ID", sim.corp_id)
        monkeypatch.setenv("WECOM_SECRET", sim.secret)
        get_settings.cache_clear()
        sim.set_members({"kf01": {"name": "客服"}})
        bind(session, "000101", "kf01")
        settings_store.save(session=session, actor=system_actor("test"), key="codes.links_enabled", value=True)
        session.commit()
        assert run_job(specs["codes.links"], JobContext(engine=engine, holder="test"))
    finally:
        sim.stop()
    session.expire_all()
    assert session.exec(select(ContactCode.link_id)).one() in sim.links.links
    run = session.exec(select(JobRun).where(JobRun.job_id == "codes.links")).one()
    assert '"created": 1' in (run.figures_json or "") and '"quota"' in (run.figures_json or "")

"""What a branch-scoped user (an agency operator of one branch, a branch manager) sees
of chain-wide things: not the HQ robot's demo inbox, not the sidecar jobs' chain-wide
figures; and a chain-wide reader is not told it reads one branch."""

import json

import pytest

from base.config import get_settings
from base.timeutil import utcnow
from core.alerts import channels as channel_service
from db.models import JobRun, Role
from i18n import t
from tests.support.apptest import run_app
from tests.support.capacity import start_simulator


@pytest.fixture
def sim(monkeypatch):
    """The console in demo mode: the robot inbox is the simulator's."""
    simulator = start_simulator()
    monkeypatch.setenv("WECOM_API_BASE", simulator.base_url)
    get_settings.cache_clear()
    yield simulator
    simulator.stop()


def robot_sections(at) -> list[str]:
    return [m.value for m in at.markdown if "条" in m.value and "**" in m.value]


def test_an_agency_operator_does_not_see_the_hq_robots_inbox(org, sim, session, make_user, as_user):
    operator = make_user(Role.hq_operator)
    channel = channel_service.add_channel(session=session, actor=operator.actor, kind="wecom",
                                          url=f"{sim.base_url}/cgi-bin/webhook/send?key=hq-robot", name="总部群")
    session.commit()
    channel_service.send_test(session=session, actor=operator.actor, channel_id=channel.id)
    session.commit()

    as_user(operator)
    at = run_app("alerts.py")
    assert not at.exception, at.exception
    assert any("总部群" in section for section in robot_sections(at))

    as_user(make_user(Role.hq_operator, org["south"]))
    at = run_app("alerts.py")
    assert not at.exception, at.exception
    assert robot_sections(at) == []
    assert t("alerts.inbox_empty") in [c.value for c in at.caption]


def test_branch_roles_do_not_see_chain_wide_job_figures(org, session, make_user, as_user):
    now = utcnow()
    session.add(JobRun(job_id="capacity.sync", holder="sidecar-1", started_at=now, finished_at=now,
                       outcome="ok", figures_json=json.dumps({"accounts": 4812, "stores": 5000})))
    session.commit()
    for user, sees_figures in [(make_user(Role.hq_operator), True),
                               (make_user(Role.hq_operator, org["south"]), False),
                               (make_user(Role.branch_manager, org["north"]), False)]:
        as_user(user)
        at = run_app("capacity.py")
        assert not at.exception, at.exception
        runs = next(frame.value for frame in at.dataframe if t("capacity.jobs.col.job") in frame.value.columns)
        assert (t("capacity.jobs.col.figures") in runs.columns) is sees_figures, user.user.username
        assert "4812" not in runs.to_csv() or sees_figures


def test_read_only_wording_follows_the_scope(org, make_user, as_user):
    as_user(make_user(Role.viewer))
    assert t("bindings.read_only_chain") in [i.value for i in run_app("bindings.py").info]
    as_user(make_user(Role.branch_manager, org["north"]))
    assert t("bindings.read_only") in [i.value for i in run_app("bindings.py").info]

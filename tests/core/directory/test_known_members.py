"""Known accounts only (issue 11 item 5): which userids WeCom can serve customers with,
asked over HTTP of the simulator, kept for minutes, and what happens without WeCom."""

import time

import pytest

from core.directory import known_members
from core.directory.known_members import CheckState, MemberProblem
from tests.support.wecom_members import configure_wecom, members_simulator, silent_server


@pytest.fixture
def sim(monkeypatch):
    sim = members_simulator()
    configure_wecom(monkeypatch, sim.base_url)
    yield sim
    sim.stop()


def test_unknown_inactive_and_no_customer_contact_are_told_apart(sim):
    check = known_members.check_userids(["Known.One", "no.contact", "gone.one", "nobody.here"])
    assert check.state == CheckState.checked
    assert check.problem("known.one") is None
    assert check.problem("NO.CONTACT") == MemberProblem.no_customer_contact
    assert check.problem("gone.one") == MemberProblem.inactive
    assert check.problem("nobody.here") == MemberProblem.unknown


def test_answers_are_kept_for_minutes(sim):
    known_members.check_userids(["known.one", "nobody.here"], now=1000.0)
    asked = dict(sim.calls)
    again = known_members.check_userids(["known.one", "nobody.here"], now=1000.0 + known_members.CACHE_SECONDS - 1)
    assert again.problem("nobody.here") == MemberProblem.unknown
    assert dict(sim.calls) == asked
    known_members.check_userids(["known.one"], now=1000.0 + known_members.CACHE_SECONDS + 1)
    assert sim.calls["externalcontact/get_follow_user_list"] == asked["externalcontact/get_follow_user_list"] + 1


def test_without_wecom_nothing_is_checked(monkeypatch):
    monkeypatch.delenv("WECOM_CORP_ID", raising=False)
    from base.config import get_settings

    get_settings.cache_clear()
    check = known_members.check_userids(["anyone"])
    assert check.state == CheckState.not_configured and check.problem("anyone") is None


def test_wecom_that_does_not_answer_is_unreachable_within_seconds(monkeypatch):
    monkeypatch.setattr(known_members, "TIMEOUT_SECONDS", 0.5)
    with silent_server() as url:
        configure_wecom(monkeypatch, url)
        started = time.monotonic()
        check = known_members.check_userids(["known.one"])
    assert time.monotonic() - started < 3
    assert check.state == CheckState.unreachable and check.reason_key == "wecom.reason.network"
    assert check.problem("known.one") is None

"""Showing an entry refuses an account WeCom does not know as a member with customer
contact (issue 11 item 5), checked over HTTP against the simulator."""

import pytest

from core.bindings import review
from db.models import Binding, Role
from tests.support.factories import bind
from tests.support.wecom_members import configure_wecom, members_simulator


@pytest.fixture
def sim(monkeypatch):
    sim = members_simulator()
    configure_wecom(monkeypatch, sim.base_url)
    yield sim
    sim.stop()


def test_show_refuses_unknown_accounts_and_applies_none(sim, session, org, make_user):
    operator = make_user(Role.hq_operator)
    fine = bind(session, "000101", "known.one")
    stranger = bind(session, "000102", "nobody.here")
    idle = bind(session, "101", "no.contact")
    with pytest.raises(review.BulkRefused) as refused:
        review.set_shown(session=session, actor=operator.actor, shown=True,
                         versions={b.id: b.version for b in (fine, stranger, idle)})
    session.rollback()
    assert refused.value.key == "bindings.cannot_show"
    assert [(p.crm_store_id, p.reason) for p in sorted(refused.value.problems, key=lambda p: p.crm_store_id)] == [
        ("000102", "wecom_unknown"), ("101", "wecom_no_customer_contact")]
    assert not session.get(Binding, fine.id).shown


def test_plan_names_what_will_and_will_not_change(sim, session, org, make_user):
    operator = make_user(Role.hq_operator)
    fine = bind(session, "000101", "known.one")
    already = bind(session, "000102", "known.two", shown=True, reviewed=True)
    stranger = bind(session, "101", "nobody.here")
    targets = [review.Selected(b.id, b.version, b.shown, b.reviewed_at is not None, crm, "")
               for b, crm in ((fine, "000101"), (already, "000102"), (stranger, "101"))]
    plan = review.plan_shown(session=session, actor=operator.actor, targets=targets, shown=True)
    assert [s.crm_store_id for s in plan.changing] == ["000101"]
    assert [s.crm_store_id for s in plan.unchanged] == ["000102"]
    assert [(p.crm_store_id, p.reason) for p in plan.refused] == [("101", "wecom_unknown")]
    assert plan.versions == {fine.id: fine.version, already.id: already.version}
    result = review.set_shown(session=session, actor=operator.actor, versions=plan.versions, shown=True)
    assert (result.changed, result.unchanged) == (1, 1)
    # Hiding needs no member check: every row may be hidden.
    hide = review.plan_shown(session=session, actor=operator.actor, targets=targets[2:], shown=False)
    assert hide.refused == [] and hide.changing == [] and len(hide.unchanged) == 1

"""Contact-code and 获客链接 incidents against the simulator over HTTP: a code
WeCom will not move off an account the store left, and a low link quota, are
alerts on the alert log (persisted with their outbox message, one per episode,
closed when the cause is gone), scoped like capacity alerts: a store's incident
to its branch, the chain's quota to HQ only."""

import pytest
from sqlmodel import Session, col, select

from base.errors import NotFound
from base.timeutil import utcnow
from core.alerts import app_messages
from core.alerts import log as alert_log
from core.auth.permissions import system_actor
from core.codes.links import read_quota
from core.codes.sync import sync_codes
from db.models import AlertChannel, AlertDelivery, AlertLevel, Binding, CapacityAlert, Role
from tests.support.capacity import client_for, start_simulator
from tests.support.factories import bind, find_store, make_account, make_binding

SYSTEM = system_actor("test")


@pytest.fixture
def sim():
    simulator = start_simulator()
    simulator.set_customers({userid: 0 for userid in ("u101", "new101")})
    yield simulator
    simulator.stop()


def replace_account(session: Session, crm_store_id: str, userid: str) -> None:
    store = find_store(session, crm_store_id)
    old = session.exec(select(Binding).where(Binding.store_id == store.id, col(Binding.ended_at).is_(None))).one()
    old.ended_at, old.end_reason = utcnow(), "replaced"
    session.add(old)
    session.commit()
    make_binding(session, store, make_account(session, userid), shown=True, reviewed=True, code=False)


def incidents(session: Session, actor, status: str = "all") -> list[alert_log.AlertRow]:
    session.expire_all()
    return alert_log.list_alerts(session=session, actor=actor, status=status, kind="codes")[0]


def test_a_code_stuck_on_the_old_account_is_an_alert_of_its_store_until_wecom_takes_the_update(
        engine, session, org, sim, make_user):
    session.add(AlertChannel(name="总部群", kind="wecom", url="http://127.0.0.1:9/cgi-bin/webhook/send?key=hq"))
    session.commit()
    bind(session, "000101", "u101", shown=True, reviewed=True, code=False)
    with client_for(sim) as client:
        sync_codes(engine=engine, client=client)
        replace_account(session, "000101", "new101")
        sim.set_members({"new101": {"name": "新号", "customer_contact": False}})
        sync_codes(engine=engine, client=client)
        sync_codes(engine=engine, client=client)      # retried: still one episode

        hq = make_user(Role.hq_operator).actor
        [row] = incidents(session, hq, "open")
        assert row.alert.level == AlertLevel.code_stale and row.alert.account_id is None
        assert (row.crm_store_id, row.store_name, row.alert.branch_id) == ("000101", "北京朝阳大悦城店",
                                                                           org["north"].id)
        # in words: which account it still serves, which it should, and WeCom's reason
        assert "u101" in row.detail and "new101" in row.detail and "没有客户联系权限（84074）" in row.detail
        # its message went out through the outbox, tied to the alert
        [delivery] = session.exec(select(AlertDelivery)).all()
        assert delivery.alert_id == row.alert.id and "门店活码未切换" in delivery.text
        assert (row.pending, row.without_channel) == (1, False)
        # the store's branch sees it, another branch does not; capacity-only filtering hides it
        assert [r.alert.id for r in incidents(session, make_user(Role.hq_operator, org["north"]).actor)] == [
            row.alert.id]
        assert incidents(session, make_user(Role.hq_operator, org["south"]).actor) == []
        assert alert_log.list_alerts(session=session, actor=hq, status="all", kind="capacity")[0] == []

        # once WeCom takes the update, the episode ends; the record stays
        sim.set_members({"new101": {"name": "新号", "customer_contact": True}})
        assert sync_codes(engine=engine, client=client).updated == 1
    assert incidents(session, hq, "open") == []
    [closed] = incidents(session, hq)
    assert closed.alert.closed_at is not None


def test_a_code_alert_can_be_acknowledged_by_its_branch_only(engine, session, org, sim, make_user):
    bind(session, "000101", "u101", shown=True, reviewed=True, code=False)
    with client_for(sim) as client:
        sync_codes(engine=engine, client=client)
        replace_account(session, "000101", "new101")
        sim.set_members({"new101": {"name": "新号", "customer_contact": False}})
        sync_codes(engine=engine, client=client)
    [row] = incidents(session, SYSTEM)
    with pytest.raises(NotFound):
        alert_log.acknowledge(session=session, actor=make_user(Role.hq_operator, org["south"]).actor,
                              alert_versions={row.alert.id: row.alert.version})
    session.rollback()
    north = make_user(Role.hq_operator, org["north"])
    assert alert_log.acknowledge(session=session, actor=north.actor,
                                 alert_versions={row.alert.id: row.alert.version}) == 1
    session.commit()
    assert incidents(session, SYSTEM, "unacknowledged") == []


def test_a_low_link_quota_is_an_hq_alert_per_episode(engine, session, org, sim, make_user):
    session.add(AlertChannel(name="HQ", kind="webhook", url="http://127.0.0.1:1/hook/hq"))
    session.commit()
    with client_for(sim) as client:
        sim.links.set_quota(total=1000, balance=19)
        read_quota(engine=engine, client=client)
        hq = make_user(Role.hq_operator).actor
        [row] = incidents(session, hq, "open")
        assert row.alert.level == AlertLevel.links_quota_low
        assert (row.alert.store_id, row.alert.branch_id, row.crm_store_id) == (None, None, None)
        assert "19" in row.detail and "1000" in row.detail
        assert row.pending == 1
        # the quota is the chain's: an agency scoped to a branch does not see it
        assert incidents(session, make_user(Role.hq_operator, org["north"]).actor) == []
        sim.links.set_quota(total=2000, balance=1019)
        read_quota(engine=engine, client=client)
        assert incidents(session, hq, "open") == []
        sim.links.set_quota(total=2000, balance=5)
        read_quota(engine=engine, client=client)
    rows = incidents(session, hq)
    assert [r.alert.closed_at is None for r in rows] == [True, False]
    assert session.exec(select(CapacityAlert).where(col(CapacityAlert.closed_at).is_(None))).one().id == \
        rows[0].alert.id


def test_an_app_message_about_an_incident_opens_the_page_that_explains_it(db_url):
    title, url = app_messages.card(AlertLevel.code_stale)
    assert (title, url.rsplit("/", 1)[-1]) == ("门店活码未切换", "bindings")
    title, url = app_messages.card(AlertLevel.links_quota_low)
    assert (title, url.rsplit("/", 1)[-1]) == ("获客链接额度不足", "alerts")

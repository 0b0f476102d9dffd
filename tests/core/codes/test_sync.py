"""Store contact codes against the WeCom simulator over HTTP: made once, kept in
line with the binding behind the same config_id, deleted on closing, repaired
after drift, and never duplicated or silently stale when the sidecar dies."""

import pytest
from sqlmodel import Session, col, select

from base.problems import Problem
from base.timeutil import utcnow
from core.codes.sync import reconcile_codes, sync_codes
from core.wecom.client import WeComError
from db.models import AlertChannel, AlertDelivery, Binding, ContactCode
from demo.simulator import Fault
from demo.simulator_codes import NO_CUSTOMER_CONTACT
from tests.support.capacity import client_for, start_simulator
from tests.support.factories import bind, find_store, make_account, make_binding, make_store


@pytest.fixture
def sim():
    simulator = start_simulator()
    simulator.set_customers({userid: 0 for userid in ("u101", "u102", "u201", "new101", "u999")})
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim):
    with client_for(sim) as c:
        yield c


@pytest.fixture
def bound(session, org):
    """Three open stores bound (000101, 000102, 000201); the rest never bound."""
    for crm, userid in (("000101", "u101"), ("000102", "u102"), ("000201", "u201")):
        bind(session, crm, userid, shown=True, reviewed=True, code=False)


def code_of(session: Session, crm_store_id: str) -> ContactCode | None:
    session.expire_all()
    store = find_store(session, crm_store_id)
    return session.exec(select(ContactCode).where(ContactCode.store_id == store.id)).first()


def way_calls(sim) -> dict[str, int]:
    return {api.rsplit("/", 1)[-1]: count for api, count in sim.calls.items() if "contact_way" in api}


def replace_account(session: Session, crm_store_id: str, userid: str) -> None:
    """换号: the current binding ends `replaced` and a new account becomes current."""
    store = find_store(session, crm_store_id)
    old = session.exec(select(Binding).where(Binding.store_id == store.id, col(Binding.ended_at).is_(None))).one()
    old.ended_at, old.end_reason = utcnow(), "replaced"
    session.add(old)
    session.commit()
    make_binding(session, store, make_account(session, userid), shown=True, reviewed=True, code=False)


def test_codes_are_made_once_and_never_again_when_nothing_changed(engine, session, bound, sim, client):
    first = sync_codes(engine=engine, client=client)
    assert first.created == 3 and first.failed == 0
    assert way_calls(sim) == {"add_contact_way": 3}
    code = code_of(session, "000101")
    assert code is not None and code.userid == "u101" and code.state == "000101"
    way = sim.codes.ways[code.config_id]
    assert (way.type, way.scene, way.user, way.state, way.remark) == (2, 2, ["u101"], "000101", "北京朝阳大悦城店")
    assert code.qr_code == sim.codes.qr_url(code.config_id)
    assert code_of(session, "101") is None      # never bound: no code

    again = sync_codes(engine=engine, client=client)
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)
    assert way_calls(sim) == {"add_contact_way": 3}
    assert len(sim.codes.ways) == 3


def test_a_state_longer_than_30_characters_is_never_sent(engine, session, org, sim, client):
    long_id = "CRM-" + "9" * 40
    store = make_store(session, org["north"], long_id, name="超长编号门店" * 8)
    make_binding(session, store, make_account(session, "u999"), code=False)
    sync_codes(engine=engine, client=client)
    code = code_of(session, long_id)
    assert code is not None and len(code.state) <= 30 and code.state.startswith("store-")
    assert all(len(way.state) <= 30 and len(way.remark) <= 30 for way in sim.codes.ways.values())

    before = dict(sim.calls)
    with pytest.raises(ValueError):
        client.add_contact_way(user="u999", state="x" * 31, remark="门店", skip_verify=True)
    assert sim.calls == before       # refused before anything went to WeCom


def test_a_new_account_updates_the_same_code_and_unbinding_keeps_it(engine, session, bound, sim, client):
    sync_codes(engine=engine, client=client)
    config_id = code_of(session, "000101").config_id

    replace_account(session, "000101", "new101")
    result = sync_codes(engine=engine, client=client)
    assert (result.created, result.updated) == (0, 1)
    code = code_of(session, "000101")
    assert (code.config_id, code.userid) == (config_id, "new101")
    assert sim.codes.ways[config_id].user == ["new101"]

    # Unbinding: the code keeps serving the last account until the next binding.
    store = find_store(session, "000101")
    current = session.exec(select(Binding).where(Binding.store_id == store.id, col(Binding.ended_at).is_(None))).one()
    current.ended_at, current.end_reason = utcnow(), "unbound"
    session.add(current)
    session.commit()
    calls = way_calls(sim)
    sync_codes(engine=engine, client=client)
    assert way_calls(sim) == calls
    assert sim.codes.ways[config_id].user == ["new101"] and code_of(session, "000101").config_id == config_id


def test_closing_a_store_deletes_its_code(engine, session, bound, sim, client):
    sync_codes(engine=engine, client=client)
    config_id = code_of(session, "000102").config_id
    store = find_store(session, "000102")
    store.status = "closed"
    session.add(store)
    session.commit()
    result = sync_codes(engine=engine, client=client)
    assert result.deleted == 1
    assert config_id not in sim.codes.ways
    code = code_of(session, "000102")
    assert code.config_id is None and code.qr_code is None and code.state == "000102"


def test_reconciliation_repairs_codes_deleted_or_changed_elsewhere(engine, session, bound, sim, client):
    sync_codes(engine=engine, client=client)
    deleted = code_of(session, "000101").config_id
    changed = code_of(session, "000102").config_id
    sim.codes.delete_elsewhere(deleted)
    sim.codes.change_elsewhere(changed, ["u201"])

    checked = reconcile_codes(engine=engine, client=client)
    assert (checked.checked, checked.gone, checked.drifted) == (3, 1, 1)
    repaired = sync_codes(engine=engine, client=client)
    assert (repaired.created, repaired.updated) == (1, 1)

    remade = code_of(session, "000101")
    assert remade.config_id != deleted and remade.config_id in sim.codes.ways
    assert remade.qr_code == sim.codes.qr_url(remade.config_id) and remade.state == "000101"
    assert sim.codes.ways[changed].user == ["u102"] and code_of(session, "000102").config_id == changed
    assert all(len(ways) == 1 for ways in sim.codes.by_state().values())


class Killed(Exception):
    """The sidecar dies: nothing after this point runs."""


def test_killed_between_wecom_and_the_database_the_next_run_keeps_the_way_made(
        engine, session, bound, sim, client, monkeypatch):
    real_add = client.add_contact_way

    def add_then_die(**kwargs):
        real_add(**kwargs)
        raise Killed

    monkeypatch.setattr(client, "add_contact_way", add_then_die)
    with pytest.raises(Killed):
        sync_codes(engine=engine, client=client, concurrency=1)
    made_before = len(sim.codes.ways)
    assert made_before >= 1
    assert code_of(session, "000101").config_id is None and code_of(session, "000101").pending_since is not None

    monkeypatch.setattr(client, "add_contact_way", real_add)
    result = sync_codes(engine=engine, client=client)
    assert result.adopted == made_before and result.created == 3 - made_before
    by_state = sim.codes.by_state()
    assert sorted(by_state) == ["000101", "000102", "000201"]
    assert all(len(ways) == 1 for ways in by_state.values())     # no duplicate way
    for crm in ("000101", "000102", "000201"):
        code = code_of(session, crm)
        assert code.config_id == by_state[crm][0].config_id and code.pending_since is None

    assert sync_codes(engine=engine, client=client).created == 0


def test_a_way_made_for_a_store_closed_since_is_adopted_then_deleted(
        engine, session, bound, sim, client, monkeypatch):
    real_add = client.add_contact_way

    def add_then_die(**kwargs):
        real_add(**kwargs)
        raise Killed

    monkeypatch.setattr(client, "add_contact_way", add_then_die)
    with pytest.raises(Killed):
        sync_codes(engine=engine, client=client, concurrency=1)
    monkeypatch.setattr(client, "add_contact_way", real_add)
    made = sim.codes.by_state()
    orphan_state = sorted(made)[0]
    [orphan] = made[orphan_state]
    # Before the next run that store closes.
    store = find_store(session, orphan_state)
    store.status = "closed"
    session.add(store)
    session.commit()

    result = sync_codes(engine=engine, client=client)
    assert (result.adopted, result.deleted) == (len(made), 1)
    assert orphan.config_id not in sim.codes.ways                 # no orphan code left serving customers
    assert orphan_state not in sim.codes.by_state()
    assert code_of(session, orphan_state).pending_since is None
    assert all(len(ways) == 1 for ways in sim.codes.by_state().values())


def stale_alerts(session: Session) -> list[str]:
    session.expire_all()
    return [d.text for d in session.exec(select(AlertDelivery)).all() if "门店活码未切换" in d.text]


def test_a_refused_update_keeps_the_old_member_stores_why_and_alerts_once(engine, session, bound, sim, client,
                                                                         monkeypatch):
    session.add(AlertChannel(name="总部群", kind="wecom", url="http://127.0.0.1:9/cgi-bin/webhook/send?key=hq"))
    session.commit()
    sync_codes(engine=engine, client=client)
    config_id = code_of(session, "000101").config_id
    replace_account(session, "000101", "new101")
    sim.set_members({"new101": {"name": "新号", "customer_contact": False}})

    # Killed after WeCom refused and before the refusal was recorded: nothing is lost,
    real_update = client.update_contact_way

    def refused_then_die(**kwargs):
        try:
            real_update(**kwargs)
        except WeComError:
            raise Killed from None

    monkeypatch.setattr(client, "update_contact_way", refused_then_die)
    with pytest.raises(Killed):
        sync_codes(engine=engine, client=client)
    assert stale_alerts(session) == []
    monkeypatch.setattr(client, "update_contact_way", real_update)

    # the next run records WeCom's reason and queues the alert (persisted with it),
    result = sync_codes(engine=engine, client=client)
    assert (result.failed, result.alerts) == (1, 1)
    code = code_of(session, "000101")
    assert (code.config_id, code.userid) == (config_id, "u101")     # WeCom still serves the old account
    assert Problem.decode(code.problem).params["errcode"] == NO_CUSTOMER_CONTACT
    [text] = stale_alerts(session)
    assert "北京朝阳大悦城店" in text and "u101" in text and "new101" in text
    # retried every run, alerted once per episode,
    assert sync_codes(engine=engine, client=client).failed == 1
    assert len(stale_alerts(session)) == 1
    # and once WeCom takes it the same code serves the new account.
    sim.set_members({"new101": {"name": "新号", "customer_contact": True}})
    assert sync_codes(engine=engine, client=client).updated == 1
    code = code_of(session, "000101")
    assert (code.config_id, code.userid, code.problem, code.stale_alerted_at) == (config_id, "new101", None, None)
    assert sim.codes.ways[config_id].user == ["new101"]


def test_a_refused_creation_is_stored_in_words_and_retried(engine, session, bound, sim, client):
    sim.set_members({"u102": {"name": "u102", "customer_contact": False}})
    result = sync_codes(engine=engine, client=client)
    assert (result.created, result.failed) == (2, 1)
    code = code_of(session, "000102")
    assert code.config_id is None and code.pending_since is None
    assert Problem.decode(code.problem).key == "wecom.reason.no_customer_contact_permission"
    sim.set_members({"u102": {"name": "u102", "customer_contact": True}})
    assert sync_codes(engine=engine, client=client).created == 1
    assert code_of(session, "000102").problem is None


def test_wecom_throttling_is_retried_not_recorded(engine, session, bound, sim, client):
    sim.inject("externalcontact/add_contact_way", Fault(errcode=45009), Fault(errcode=-1))
    result = sync_codes(engine=engine, client=client)
    assert (result.created, result.failed) == (3, 0)
    assert len(sim.codes.ways) == 3


@pytest.mark.postgres
def test_made_updated_deleted_and_adopted_on_postgresql(pg_org, sim, monkeypatch):
    engine = pg_org.engine
    with Session(engine, expire_on_commit=False) as pg, client_for(sim) as pg_client:
        for crm, userid in (("000101", "u101"), ("000102", "u102")):
            bind(pg, crm, userid, code=False)
        real_add = pg_client.add_contact_way

        def add_then_die(**kwargs):
            real_add(**kwargs)
            raise Killed

        monkeypatch.setattr(pg_client, "add_contact_way", add_then_die)
        with pytest.raises(Killed):
            sync_codes(engine=engine, client=pg_client, concurrency=1)
        monkeypatch.setattr(pg_client, "add_contact_way", real_add)
        first = sync_codes(engine=engine, client=pg_client)
        assert first.adopted + first.created == 2 and first.adopted >= 1
        assert all(len(ways) == 1 for ways in sim.codes.by_state().values())
        config_id = code_of(pg, "000101").config_id
        replace_account(pg, "000101", "new101")
        store = find_store(pg, "000102")
        store.status = "closed"
        pg.add(store)
        pg.commit()
        result = sync_codes(engine=engine, client=pg_client)
        assert (result.updated, result.deleted) == (1, 1)
        assert sim.codes.ways[config_id].user == ["new101"] and code_of(pg, "000102").config_id is None

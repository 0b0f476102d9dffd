"""获客链接 (issue 11 item 4) against the simulator over HTTP: one link per store with a
code while links are on, following the code's member, deleted when the store closes;
WeCom's refusals kept on the code in words; a link a killed run made adopted, never doubled;
the quota read with one alert per low episode; each link's daily figures stored and
summed per branch and store; a link handed to the App adds through the store's state."""

from datetime import date, datetime, timedelta

import httpx
import pytest
from sqlmodel import select

from base.problems import Problem
from base.timeutil import display_zone
from core import settings_store
from core.auth.permissions import system_actor
from core.bindings import entries
from core.codes import links
from core.codes.links import link_figures, pull_statistics, read_quota, sync_links
from core.codes.service import code_of_store
from core.wecom.client import LINK_NOT_FOUND, WeComError
from db.models import AlertChannel, AlertDelivery, ContactCode, LinkStatistic, Role
from i18n import error_text
from tests.support.capacity import client_for, start_simulator
from tests.support.factories import bind, find_store, give_code

SYSTEM = system_actor("test")


@pytest.fixture
def sim():
    sim = start_simulator()
    sim.set_members({u: {"name": u} for u in ("kf01", "kf02", "kf03")})
    yield sim
    sim.stop()


def links_on(session, on: bool = True) -> None:
    settings_store.save(session=session, actor=SYSTEM, key="codes.links_enabled", value=on)
    session.commit()


def code_of(session, crm_store_id: str) -> ContactCode:
    session.expire_all()
    return session.exec(select(ContactCode).where(ContactCode.store_id == find_store(session, crm_store_id).id)).one()


def test_links_are_made_only_while_on_and_once(engine, session, org, sim):
    bind(session, "000101", "kf01")
    store = find_store(session, "000101")
    store.name = "北京朝阳大悦城店" * 5  # longer than WeCom's 30 characters
    session.add(store)
    session.commit()
    with client_for(sim) as client:
        assert sync_links(engine=engine, client=client).created == 0
        assert sim.links.links == {}
        links_on(session)
        assert sync_links(engine=engine, client=client).created == 1
        calls = dict(sim.calls)
        again = sync_links(engine=engine, client=client)
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)
    assert dict(sim.calls) == calls  # nothing changed: no WeCom call
    code = code_of(session, "000101")
    link = sim.links.links[code.link_id]
    assert link.users == ["kf01"] and link.name == store.name[:30]
    assert code.link_url == sim.links.url_of(code.link_id) and code.link_userid == "kf01"


def test_a_link_follows_its_codes_member_and_goes_when_the_store_closes(engine, session, org, sim):
    links_on(session)
    bind(session, "000101", "kf01")
    with client_for(sim) as client:
        sync_links(engine=engine, client=client)
        link_id = code_of(session, "000101").link_id
        # The store moved to kf02 and its code now serves kf02 (codes.sync did it).
        give_code(session, find_store(session, "000101"), "kf02")
        result = sync_links(engine=engine, client=client)
        assert result.updated == 1
        assert code_of(session, "000101").link_id == link_id and sim.links.links[link_id].users == ["kf02"]
        assert code_of(session, "000101").link_userid == "kf02"
        store = find_store(session, "000101")
        store.status = "closed"
        session.add(store)
        session.commit()
        assert sync_links(engine=engine, client=client).deleted == 1
    assert link_id not in sim.links.links
    code = code_of(session, "000101")
    assert (code.link_id, code.link_url, code.link_userid) == (None, None, None)


def test_a_refused_member_leaves_the_link_as_wecom_has_it(engine, session, org, sim):
    links_on(session)
    bind(session, "000101", "kf01")
    with client_for(sim) as client:
        sync_links(engine=engine, client=client)
        sim.set_members({"kf09": {"customer_contact": False}})
        give_code(session, find_store(session, "000101"), "kf09")
        result = sync_links(engine=engine, client=client)
    assert result.failed == 1 and result.reasons == {"wecom.reason.no_customer_contact_permission": 1}
    assert code_of(session, "000101").link_userid == "kf01"


def test_the_app_link_adds_through_the_stores_state_and_costs_quota(engine, session, org, sim):
    links_on(session)
    bind(session, "000101", "kf01", shown=True, reviewed=True)
    with client_for(sim) as client:
        sync_links(engine=engine, client=client)
    entry = entries.entry_for_store(session=session, actor=SYSTEM, crm_store_id="000101")
    assert entry is not None and entry.visible
    state = code_of(session, "000101").state
    assert entry.contact_link.endswith(f"customer_channel={state}")
    before = sim.links.balance
    assert httpx.get(entry.contact_link).status_code == 200
    assert sim.links.balance == before - 1 and sim.customers["kf01"] == 1
    links_on(session, False)
    assert entries.entry_for_store(session=session, actor=SYSTEM, crm_store_id="000101").contact_link is None


def test_a_low_balance_alerts_once_per_episode(engine, session, org, sim):
    session.add(AlertChannel(name="HQ", kind="webhook", url="http://127.0.0.1:1/hook/hq"))
    session.commit()
    sim.links.set_quota(total=1000, balance=25)
    with client_for(sim) as client:
        assert not read_quota(engine=engine, client=client).alerted
        sim.links.set_quota(total=1000, balance=19)
        assert read_quota(engine=engine, client=client).alerted
        assert not read_quota(engine=engine, client=client).alerted  # the next hour: not again
        sim.links.set_quota(total=2000, balance=1019)
        read_quota(engine=engine, client=client)
        sim.links.set_quota(total=2000, balance=5)
        assert read_quota(engine=engine, client=client).alerted  # a new episode
    texts = [d.text for d in session.exec(select(AlertDelivery)).all()]
    assert len(texts) == 2 and "剩余额度 19" in texts[0] and "剩余额度 5" in texts[1]


def test_the_quota_is_read_hourly_once_links_are_on(session, org):
    now = datetime(2026, 12, 3, 8, 0)
    assert not links.quota_due(session=session, now=now)
    links_on(session)
    assert links.quota_due(session=session, now=now)
    row = links.quota_row(session)
    row.read_at = now
    session.commit()
    assert not links.quota_due(session=session, now=now + timedelta(minutes=59))
    assert links.quota_due(session=session, now=now + timedelta(minutes=61))


def test_daily_figures_are_stored_and_summed_per_branch_and_store(engine, session, org, sim, make_user):
    links_on(session)
    bind(session, "000101", "kf01")
    bind(session, "000201", "kf02")
    with client_for(sim) as client:
        sync_links(engine=engine, client=client)
        zone = display_zone()
        today = date(2026, 12, 3)
        yesterday_noon = datetime(2026, 12, 2, 12, 0, tzinfo=zone).timestamp()
        north, south = code_of(session, "000101"), code_of(session, "000201")
        sim.links.open(north.link_id, north.state, at=yesterday_noon)
        sim.links.open(north.link_id, north.state, add=False, at=yesterday_noon)
        sim.links.open(south.link_id, south.state, at=yesterday_noon)
        sim.links.open(south.link_id, south.state, at=datetime(2026, 12, 3, 9, 0, tzinfo=zone).timestamp())
        first = pull_statistics(engine=engine, client=client, today=today, zone=zone)
        assert (first.days, first.stored, first.failed) == (1, 2, 0)
        # Done for the day: the next run asks nothing.
        assert pull_statistics(engine=engine, client=client, today=today, zone=zone).calls == 0
    stored = {(s.store_id, s.day): (s.clicks, s.new_customers) for s in session.exec(select(LinkStatistic)).all()}
    day = links.day_number(date(2026, 12, 2))
    assert stored == {(north.store_id, day): (2, 1), (south.store_id, day): (1, 1)}
    hq = make_user(Role.viewer).actor
    per_branch = link_figures(session=session, actor=hq, start=date(2026, 12, 1), end=date(2026, 12, 3))
    assert [(f.key, f.clicks, f.new_customers) for f in per_branch] == [("BJ01", 2, 1), ("SH01", 1, 1)]
    north_stores = link_figures(session=session, actor=hq, start=date(2026, 12, 1), end=date(2026, 12, 3),
                                branch_id=org["north"].id)
    assert [(f.key, f.clicks) for f in north_stores] == [("000101", 2)]
    manager = make_user(Role.branch_manager, org["south"]).actor
    assert [f.key for f in link_figures(session=session, actor=manager, start=date(2026, 12, 1),
                                        end=date(2026, 12, 3))] == ["000201"]


class Killed(Exception):
    """The sidecar dies: nothing after this point runs."""


def test_a_refused_link_is_stored_on_the_code_in_words_until_wecom_takes_it(engine, session, org, sim):
    links_on(session)
    sim.set_members({"kf09": {"name": "kf09", "customer_contact": False}})
    bind(session, "000101", "kf09")
    bind(session, "000102", "kf02")
    with client_for(sim) as client:
        assert sync_links(engine=engine, client=client).created == 1
        code = code_of(session, "000101")
        assert code.link_id is None and code.link_pending_since is None   # WeCom answered: nothing to adopt
        shown = code_of_store(session=session, actor=SYSTEM, store_id=find_store(session, "000101").id)
        assert shown.link_problem.key == "wecom.reason.no_customer_contact_permission"
        assert "84074" in error_text(shown.link_problem)
        assert code_of(session, "000102").link_problem is None

        # a refused update is kept too, and the link stays as WeCom has it
        give_code(session, find_store(session, "000102"), "kf09")
        assert sync_links(engine=engine, client=client).failed == 2
        moved = code_of(session, "000102")
        assert moved.link_userid == "kf02" and "84074" in error_text(Problem.decode(moved.link_problem))

        # the next calls WeCom takes clear both
        sim.set_members({"kf09": {"name": "kf09", "customer_contact": True}})
        result = sync_links(engine=engine, client=client)
    assert (result.created, result.updated, result.failed) == (1, 1, 0)
    assert code_of(session, "000101").link_problem is None and code_of(session, "000102").link_problem is None


def test_killed_between_create_link_and_the_database_the_next_run_keeps_the_link_made(
        engine, session, org, sim, monkeypatch):
    links_on(session)
    bind(session, "000101", "kf01")
    bind(session, "000102", "kf02")
    with client_for(sim) as client:
        real_create = client.create_link

        def create_then_die(**kwargs):
            real_create(**kwargs)
            raise Killed

        monkeypatch.setattr(client, "create_link", create_then_die)
        with pytest.raises(Killed):
            sync_links(engine=engine, client=client)
        assert len(sim.links.links) == 2                        # WeCom made them, we never recorded them
        assert all(code_of(session, crm).link_pending_since is not None for crm in ("000101", "000102"))
        monkeypatch.setattr(client, "create_link", real_create)

        result = sync_links(engine=engine, client=client)
        assert (result.adopted, result.created) == (2, 0)
        assert len(sim.links.links) == 2                        # never a second link
        for crm, userid in (("000101", "kf01"), ("000102", "kf02")):
            code = code_of(session, crm)
            link = sim.links.links[code.link_id]
            assert link.users == [userid] and link.name == find_store(session, crm).name[:30]
            assert (code.link_url, code.link_userid, code.link_pending_since) == (
                sim.links.url_of(code.link_id), userid, None)
        assert sync_links(engine=engine, client=client).created == 0


def test_a_link_made_for_a_store_closed_since_is_adopted_and_deleted(engine, session, org, sim, monkeypatch):
    links_on(session)
    bind(session, "000101", "kf01")
    with client_for(sim) as client:
        real_create = client.create_link

        def create_then_die(**kwargs):
            real_create(**kwargs)
            raise Killed

        monkeypatch.setattr(client, "create_link", create_then_die)
        with pytest.raises(Killed):
            sync_links(engine=engine, client=client)
        monkeypatch.setattr(client, "create_link", real_create)
        store = find_store(session, "000101")
        store.status = "closed"
        session.add(store)
        session.commit()
        result = sync_links(engine=engine, client=client)
    assert (result.adopted, result.deleted, result.created) == (1, 1, 0)
    assert sim.links.links == {}                                # no orphan left in WeCom
    assert code_of(session, "000101").link_id is None


def test_the_simulator_lists_and_reads_links_as_wecom_documents(sim):
    with client_for(sim) as client:
        made = [client.create_link(link_name=f"门店{n}", user_list=["kf01"])[0] for n in range(105)]
        first = client.call("externalcontact/customer_acquisition/list_link", method="POST",
                            body={"limit": 500, "cursor": ""})
        assert len(first["link_id_list"]) == 100 and first["next_cursor"]
        assert sorted(client.list_links()) == sorted(made)
        link = client.get_link(made[0])
        assert (link["link_name"], link["user_list"], link["url"]) == ("门店0", ["kf01"], sim.links.url_of(made[0]))
        assert isinstance(link["create_time"], int)
        client.delete_link(made[0])
        with pytest.raises(WeComError) as refused:
            client.get_link(made[0])
    assert refused.value.errcode == LINK_NOT_FOUND

"""Members who leave WeCom, over HTTP against the simulator: the member sync
(`user/get`) and the `change_contact` callback retire the account — disabled
with the reason, the store's binding ended `account_disabled`, one member_left
alert in the outbox naming the store and the member — and neither a second sync
nor a repeated callback alerts again; both paths leave the same state; an unbound
standby that left is disabled without an alert; userid not found counts as left;
the departed members' customers awaiting transfer are replaced each sync; the
job runs first in `--once`."""

import socket
import threading
import time

import pytest
import uvicorn
from sqlmodel import Session, select
from starlette.applications import Starlette

from base.config import get_settings
from base.problems import Problem
from console.web import wecom_callback
from core.directory.members import SYNC_ACTOR, departed_members, member_changed, sync_members
from core.scheduling.jobs import load_jobs
from db.models import (
    Account,
    AlertChannel,
    AlertDelivery,
    AuditEntry,
    Binding,
    CapacityAlert,
    Role,
    UnassignedCustomer,
)
from tests.support.capacity import bind_accounts, client_for, start_simulator
from tests.support.factories import make_account

TOKEN, AES_KEY = "member-callback-token", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
MEMBERS = {"kf_left": {"name": "朝阳客服"}, "kf_stay": {"name": "海淀客服"}, "kf_spare": {"name": "备用客服"},
           "kf_sh": {"name": "浦东客服"}}


@pytest.fixture
def sim(db_url):
    simulator = start_simulator()
    simulator.set_members(MEMBERS)
    yield simulator
    simulator.stop()


@pytest.fixture
def setup(session, org, sim):
    """kf_left serves 000101 and kf_stay 000102 (north), kf_sh 000201 (south);
    kf_spare is an unbound standby; a group robot takes every alert."""
    accounts = bind_accounts(session, [("000101", "kf_left", 800, 5000), ("000102", "kf_stay", 100, 5000),
                                       ("000201", "kf_sh", 300, 5000)])
    accounts["kf_spare"] = make_account(session, "kf_spare", name="备用客服", status="standby")
    session.add(AlertChannel(name="总部群", kind="wecom", url=f"{sim.base_url}/cgi-bin/webhook/send?key=hq"))
    session.commit()
    sim.set_customers({"kf_left": 3, "kf_stay": 1, "kf_sh": 2})
    return accounts


def sync(engine, sim):
    with client_for(sim) as client:
        return sync_members(engine=engine, client=client)


def state_of(session: Session, userid: str) -> dict:
    """What a user relies on after a member is gone, as comparable values."""
    session.expire_all()
    account = session.exec(select(Account).where(Account.userid == userid)).one()
    alerts = session.exec(select(CapacityAlert).where(CapacityAlert.account_id == account.id)).all()
    deliveries = session.exec(select(AlertDelivery).where(
        AlertDelivery.alert_id.in_([a.id for a in alerts]))).all() if alerts else []
    return {
        "status": account.status, "member_status": account.member_status,
        "reason": Problem.decode(account.status_reason).key if account.status_reason else None,
        "bindings": [(b.ended_at is None, b.end_reason) for b in session.exec(
            select(Binding).where(Binding.account_id == account.id)).all()],
        "alerts": [(a.level, a.closed_at is not None, a.notify_count) for a in alerts],
        "deliveries": [d.text for d in deliveries],
    }


LEFT_STATE = {
    "status": "disabled", "member_status": 5, "reason": "accounts.reason.member_left",
    "bindings": [(False, "account_disabled")], "alerts": [("member_left", True, 1)],
    "deliveries": ["北京朝阳大悦城店（000101）的企微账号 北京朝阳大悦城店客服(账号:kf_left) "
                   "已离职，门店入口已下线，请尽快换号。"],
}


def test_a_member_who_left_ends_the_binding_and_alerts_once(engine, session, setup, sim):
    sim.member_leaves("kf_left")
    result = sync(engine, sim)
    assert (result.accounts, result.checked, result.retired, result.alerts) == (4, 4, 1, 1)
    assert state_of(session, "kf_left") == LEFT_STATE
    assert state_of(session, "kf_stay")["status"] == "active"
    assert state_of(session, "kf_stay")["member_status"] == 1
    audit = [(e.action, e.actor_name) for e in session.exec(select(AuditEntry).order_by(AuditEntry.id)).all()]
    assert audit == [("account.update", "wecom-member-sync"), ("binding.end", "wecom-member-sync")]

    again = sync(engine, sim)
    assert again.retired == 0 and again.alerts == 0 and again.accounts == 3  # the disabled one is not read again
    assert state_of(session, "kf_left") == LEFT_STATE


def test_a_disabled_member_likewise(engine, session, setup, sim):
    sim.member_updates("kf_left", 2)
    assert sync(engine, sim).alerts == 1
    state = state_of(session, "kf_left")
    assert (state["status"], state["member_status"], state["reason"]) == ("disabled", 2,
                                                                          "accounts.reason.member_disabled")
    assert state["bindings"] == [(False, "account_disabled")]
    assert state["deliveries"] == [
        "北京朝阳大悦城店（000101）的企微账号 北京朝阳大悦城店客服(账号:kf_left) "
        "已被停用，门店入口已下线，请尽快换号。"]
    assert sync(engine, sim).alerts == 0
    assert len(state_of(session, "kf_left")["deliveries"]) == 1


def test_a_userid_wecom_does_not_know_counts_as_left(engine, session, setup, sim):
    make_account(session, "kf_ghost", name="幽灵")
    sync(engine, sim)
    ghost = state_of(session, "kf_ghost")
    assert (ghost["status"], ghost["member_status"], ghost["reason"]) == ("disabled", 5, "accounts.reason.member_left")
    assert ghost["alerts"] == []  # it served no store


def test_an_unbound_standby_that_left_is_disabled_without_an_alert(engine, session, setup, sim):
    sim.member_leaves("kf_spare")
    result = sync(engine, sim)
    assert (result.retired, result.alerts) == (1, 0)
    spare = state_of(session, "kf_spare")
    assert (spare["status"], spare["reason"], spare["alerts"]) == ("disabled", "accounts.reason.member_left", [])
    assert session.exec(select(AlertDelivery)).all() == []


def test_customers_awaiting_transfer_are_replaced_each_sync_and_listed_by_store(engine, session, setup, sim,
                                                                                make_user, org):
    sim.member_leaves("kf_left")
    sim.member_leaves("kf_sh")
    assert sync(engine, sim).unassigned == 5
    rows = session.exec(select(UnassignedCustomer.handover_userid)).all()
    assert sorted(rows) == ["kf_left"] * 3 + ["kf_sh"] * 2
    hq = make_user(Role.hq_operator).actor
    listed = [(m.crm_store_id, m.userid, m.name, m.customers) for m in departed_members(session=session, actor=hq)]
    assert listed == [("000101", "kf_left", "北京朝阳大悦城店客服", 3), ("000201", "kf_sh", "上海浦东陆家嘴店客服", 2)]
    north = make_user(Role.branch_manager, org["north"]).actor
    assert [m.userid for m in departed_members(session=session, actor=north)] == ["kf_left"]

    sim.people.unassigned = [u for u in sim.people.unassigned if u.handover_userid != "kf_left"]  # transferred
    assert sync(engine, sim).unassigned == 2
    session.expire_all()
    assert [m.userid for m in departed_members(session=session, actor=hq)] == ["kf_sh"]


def test_the_sync_job_runs_first_and_can_be_requested():
    specs = load_jobs()
    ids = [spec.id for spec in specs]
    assert ids[0] == "directory.sync_members"
    assert ids.index("directory.sync_members") < ids.index("capacity.sync_counts")
    assert next(spec for spec in specs if spec.id == "directory.sync_members").requestable


@pytest.fixture
def callback_url(db_url, monkeypatch):
    """The console's /wecom/callback served over HTTP on loopback."""
    monkeypatch.setenv("WECOM_CALLBACK_TOKEN", TOKEN)
    monkeypatch.setenv("WECOM_CALLBACK_AES_KEY", AES_KEY)
    monkeypatch.setenv("WECOM_CORP_ID", "wwsimulator")
    get_settings.cache_clear()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=wecom_callback.ROUTES), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/wecom/callback"
    server.should_exit = True
    thread.join(10)
    listener.close()


@pytest.fixture
def calling_sim(callback_url):
    simulator = start_simulator(callback_url=callback_url, callback_token=TOKEN, callback_aes_key=AES_KEY)
    simulator.set_members(MEMBERS)
    yield simulator
    simulator.stop()


def test_the_callback_and_the_sync_leave_the_same_state(engine, session, org, calling_sim):
    """kf_left leaves and WeCom calls the console; kf_stay's departure reaches the
    console only through the sync. Both end where the sync alone would have."""
    bind_accounts(session, [("000101", "kf_left", 800, 5000), ("000102", "kf_stay", 100, 5000)])
    session.add(AlertChannel(name="总部群", kind="wecom", url=f"{calling_sim.base_url}/cgi-bin/webhook/send?key=hq"))
    session.commit()
    assert calling_sim.member_leaves("kf_left") == 200
    assert state_of(session, "kf_left") == LEFT_STATE
    assert calling_sim.people.post_change_contact("kf_left", "delete_user") == 200  # WeCom's retry
    assert state_of(session, "kf_left") == LEFT_STATE

    calling_sim.people.change_status("kf_stay", 5, 0)  # no callback: only the sync finds out
    result = sync(engine, calling_sim)
    assert (result.retired, result.alerts) == (1, 1)
    assert state_of(session, "kf_left") == LEFT_STATE  # the sync does not alert again
    stay = state_of(session, "kf_stay")
    left = {**LEFT_STATE, "deliveries": [
        "北京海淀银泰店（000102）的企微账号 北京海淀银泰店客服(账号:kf_stay) 已离职，门店入口已下线，请尽快换号。"]}
    assert stay == left


def test_a_disabled_account_is_not_acted_on_again(session, setup):
    """An account already disabled (here by the callback) stays as it is when the news comes again."""
    first = member_changed(session=session, actor=SYNC_ACTOR, userid="KF_LEFT", status=5)
    session.commit()
    assert first is not None and first.alert_id is not None
    assert member_changed(session=session, actor=SYNC_ACTOR, userid="kf_left", status=2) is None
    session.commit()
    assert state_of(session, "kf_left") == LEFT_STATE | {"member_status": 2}
    assert member_changed(session=session, actor=SYNC_ACTOR, userid="nobody", status=5) is None


def reserve_spare(session: Session, crm_store_id: str, account: Account) -> None:
    from db.models import StandbyAccount
    from tests.support.factories import find_store

    session.add(StandbyAccount(store_id=find_store(session, crm_store_id).id, account_id=account.id, position=0))
    session.commit()


def test_a_member_who_left_hands_the_store_to_its_standby(engine, session, setup, sim):
    from db.models import AccountSwitch, StandbyAccount

    reserve_spare(session, "000101", setup["kf_spare"])
    sim.member_leaves("kf_left")
    assert sync(engine, sim).alerts == 1
    left = state_of(session, "kf_left")
    assert left["status"] == "disabled" and left["bindings"] == [(False, "replaced")]
    assert left["deliveries"] == [
        "北京朝阳大悦城店（000101）的企微账号 北京朝阳大悦城店客服(账号:kf_left) 已离职，"
        "门店已自动换到备用号 备用客服(账号:kf_spare)，入口保持显示，二维码不变。"]
    spare = state_of(session, "kf_spare")
    assert spare["status"] == "active" and spare["bindings"] == [(True, None)]
    new = session.exec(select(Binding).where(Binding.account_id == setup["kf_spare"].id)).one()
    assert new.shown is True   # the entry stays up
    assert session.exec(select(StandbyAccount)).all() == []
    assert session.exec(select(AccountSwitch)).one().reason == "member_left"


def test_a_standby_that_left_is_taken_off_its_store_list(engine, session, setup, sim):
    from db.models import StandbyAccount

    reserve_spare(session, "000101", setup["kf_spare"])
    sim.member_leaves("kf_spare")
    sync(engine, sim)
    assert session.exec(select(StandbyAccount)).all() == []
    assert state_of(session, "kf_left")["bindings"] == [(True, None)]

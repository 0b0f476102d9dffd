"""WeCom login against the simulator over HTTP: a linked, active member gets the very
session password login gives; every refusal (forged, expired or replayed state,
replayed code, not a member, unlinked, departed, disabled user, expired agency,
WeCom unreachable) is its own sentence and leaves no session behind."""

from datetime import timedelta

import pytest
from sqlmodel import select

from base.config import get_settings
from base.timeutil import utcnow
from core.auth import sessions, wecom_login
from core.wecom.client import RetryPolicy, WeComClient, forget_tokens
from db.models import AuditEntry, LoginSession, Role, WeComLoginState
from i18n import t
from tests.support.capacity import client_for, start_simulator
from tests.support.wecom_login import callback_query, scan, wecom_login_env

CONSOLE = "http://console.test"


@pytest.fixture
def sim(db_url, monkeypatch):
    simulator = start_simulator()
    simulator.set_members({
        "WangJL": {"name": "王经理"},      # linked to the BJ branch manager
        "stranger": {"name": "路人"},      # a member no console user is linked to
        "zhao": {"name": "赵代运营"},      # linked to an agency operator
    })
    for key, value in wecom_login_env(simulator, CONSOLE).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim):
    with client_for(sim) as wecom:
        yield wecom


@pytest.fixture
def manager(org, make_user):
    return make_user(Role.branch_manager, org["north"], username="bj_manager", wecom_userid="wangjl")


def scanned(session, userid: str) -> dict[str, str]:
    """A login started in the console and confirmed on WeCom's page: the callback's code and state."""
    state = wecom_login.start_login(session=session)
    session.commit()
    return callback_query(scan(wecom_login.qr_login_url(state), userid))


def finish(session, client, query, cookie_state: str | None = "same"):
    result = wecom_login.finish_login(
        session=session, state=query["state"], cookie_state=query["state"] if cookie_state == "same" else cookie_state,
        code=query["code"], client=client, ip="10.0.0.8", user_agent="Chrome")
    session.commit()
    return result


def nothing_created(session) -> bool:
    return (session.exec(select(LoginSession)).first() is None
            and session.exec(select(AuditEntry).where(AuditEntry.action == "auth.login_wecom")).first() is None)


def test_linked_active_member_gets_the_password_login_session(session, sim, client, manager):
    query = scanned(session, "WangJL")
    result = finish(session, client, query)
    assert result.ok
    actor = sessions.resolve(session=session, token=result.token)
    assert actor.name == "bj_manager" and actor.role == Role.branch_manager
    assert actor.branch_id == manager.user.branch_id
    stored = session.exec(select(LoginSession)).one()
    assert stored.ip == "10.0.0.8" and stored.user_agent == "Chrome"
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "auth.login_wecom")).one()
    assert entry.actor_name == "bj_manager" and entry.entity_id == str(manager.user.id)
    assert t("audit.action.auth.login_wecom") == "登录（企业微信）"
    assert session.get(WeComLoginState, query["state"]).used_at is not None
    # Same session as password login: logout revokes it.
    sessions.log_out(session=session, token=result.token)
    session.commit()
    assert sessions.resolve(session=session, token=result.token) is None


def test_the_qr_and_oauth_urls_carry_the_app_and_the_callback(sim):
    qr = wecom_login.qr_login_url("Abc123")
    assert qr == (f"{sim.base_url}/wwlogin/sso/login?login_type=CorpApp&appid={sim.corp_id}&agentid={sim.agent_id}"
                  "&redirect_uri=http%3A%2F%2Fconsole.test%2Flogin%2Fwecom%2Fcallback&state=Abc123")
    oauth = wecom_login.oauth_url("Abc123")
    assert oauth == (f"{sim.base_url}/connect/oauth2/authorize?appid={sim.corp_id}"
                     "&redirect_uri=http%3A%2F%2Fconsole.test%2Flogin%2Fwecom%2Fcallback&response_type=code"
                     f"&scope=snsapi_base&state=Abc123&agentid={sim.agent_id}#wechat_redirect")


def test_states_are_random_alphanumeric_and_single_use(session, sim, client, manager):
    states = {wecom_login.start_login(session=session) for _ in range(20)}
    assert len(states) == 20 and all(len(s) == 32 and s.isalnum() and s.isascii() for s in states)
    query = scanned(session, "WangJL")
    assert finish(session, client, query).ok
    session.exec(select(LoginSession)).one()
    # The same callback again (state and code replayed): the state is spent.
    replay = finish(session, client, query)
    assert replay.error_key == "login.wecom_state_used"
    assert len(session.exec(select(LoginSession)).all()) == 1


def test_replayed_code_with_a_fresh_state_is_refused(session, sim, client, manager):
    first = scanned(session, "WangJL")
    assert finish(session, client, first).ok
    state = wecom_login.start_login(session=session)
    session.commit()
    result = finish(session, client, {"state": state, "code": first["code"]})
    assert result.error_key == "login.wecom_code_invalid"
    assert len(session.exec(select(LoginSession)).all()) == 1


@pytest.mark.parametrize("cookie_state", [None, "", "another-browsers-state"])
def test_a_state_this_browser_did_not_start_is_refused(session, sim, client, manager, cookie_state):
    query = scanned(session, "WangJL")
    result = finish(session, client, query, cookie_state=cookie_state)
    assert result.error_key == "login.wecom_state_forged"
    assert nothing_created(session)
    # The state was not spent: the right browser can still finish.
    assert finish(session, client, query).ok


def test_a_state_the_console_never_issued_is_refused(session, sim, client, manager):
    query = scanned(session, "WangJL")
    result = finish(session, client, {"state": "Forged0000", "code": query["code"]})
    assert result.error_key == "login.wecom_state_forged"
    assert nothing_created(session)


def test_a_state_older_than_five_minutes_is_refused(session, sim, client, manager):
    query = scanned(session, "WangJL")
    row = session.get(WeComLoginState, query["state"])
    row.created_at = utcnow() - timedelta(minutes=5, seconds=1)
    session.add(row)
    session.commit()
    assert finish(session, client, query).error_key == "login.wecom_state_expired"
    assert nothing_created(session)


def test_an_unlinked_member_is_refused_by_name(session, sim, client, manager):
    result = finish(session, client, scanned(session, "stranger"))
    assert result.error_key == "login.wecom_not_linked"
    assert t(result.error_key, **result.error_params) == "企业微信成员 stranger 尚未关联控制台用户，请联系总部管理员。"
    assert nothing_created(session)


@pytest.mark.parametrize("status", [2, 4, 5])
def test_a_member_who_left_or_is_disabled_is_refused(session, sim, client, manager, status):
    query = scanned(session, "WangJL")
    sim.member_updates("WangJL", status)  # between the scan and the callback
    assert finish(session, client, query).error_key == "login.wecom_member_inactive"
    assert nothing_created(session)


def test_a_disabled_user_or_an_expired_agency_is_refused(session, sim, client, org, make_user):
    make_user(Role.branch_manager, org["north"], username="bj_manager", wecom_userid="WangJL", disabled=True)
    make_user(Role.hq_operator, org["south"], username="agency", wecom_userid="zhao",
              expires_at=utcnow() - timedelta(minutes=1))
    assert finish(session, client, scanned(session, "WangJL")).error_key == "login.account_inactive"
    assert finish(session, client, scanned(session, "zhao")).error_key == "login.account_inactive"
    assert nothing_created(session)


class _NotAMember:
    """WeCom's answer for someone outside the corp: an openid, no userid (the simulator only knows members)."""

    def call(self, api: str, **_kwargs) -> dict:
        assert api == "auth/getuserinfo"
        return {"errcode": 0, "errmsg": "ok", "openid": "oAbCdEf"}


def test_someone_outside_the_corp_is_refused(session, sim, manager):
    state = wecom_login.start_login(session=session)
    session.commit()
    result = finish(session, _NotAMember(), {"state": state, "code": "c0de"})
    assert result.error_key == "login.wecom_not_member"
    assert nothing_created(session)


def test_wecom_unreachable_is_refused_and_spends_the_state(session, sim, manager):
    state = wecom_login.start_login(session=session)
    session.commit()
    forget_tokens()
    with WeComClient("http://127.0.0.1:9", sim.corp_id, sim.secret, timeout=1,
                     retry=RetryPolicy(0.01, 0.02, 2)) as unreachable:
        result = finish(session, unreachable, {"state": state, "code": "c0de"})
    assert result.error_key == "login.wecom_unreachable"
    assert t(result.error_key) == "暂时无法连接企业微信，请稍后再试。"
    assert nothing_created(session)
    assert session.get(WeComLoginState, state).used_at is not None


def test_password_login_off_leaves_only_hq_admin(session, org, make_user):
    from core import settings_store
    from core.auth.permissions import system_actor

    admin = make_user(Role.hq_admin, username="admin")
    operator = make_user(Role.hq_operator, username="operator")
    settings_store.save(session=session, actor=system_actor("test"), key=sessions.PASSWORD_LOGIN_SETTING, value=False)
    session.commit()
    refused = sessions.log_in(session=session, username="operator", password=operator.password)
    assert refused.error_key == "login.password_login_off"
    assert "企业微信扫码登录" in t(refused.error_key)
    # A wrong password still says only that: the setting reveals nothing to a stranger.
    assert sessions.log_in(session=session, username="operator", password="wrong").error_key == \
        "login.bad_credentials"
    assert sessions.log_in(session=session, username="admin", password=admin.password).ok

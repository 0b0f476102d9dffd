"""/login/wecom and its callback, and /login inside the WeCom client: the state
cookie, the redirect URLs, the session cookie at the end, and each refusal as one
Chinese sentence on /login with no session."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from base.config import get_settings
from console.web import wecom_login
from console.web.auth_routes import ROUTES as AUTH_ROUTES
from console.web.cookies import SESSION_COOKIE, WECOM_STATE_COOKIE, unsign_session, unsign_wecom_state
from core.auth import sessions
from db.models import LoginSession, Role, WeComLoginState
from i18n import t
from tests.support.capacity import start_simulator
from tests.support.wecom_login import scan, wecom_login_env

CONSOLE = "http://console.test"
WXWORK_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
             "Mobile/15E148 wxwork/4.1.20 MicroMessenger/7.0.1 Language/zh ColorScheme/Light")


@pytest.fixture
def sim(db_url, monkeypatch):
    simulator = start_simulator()
    simulator.set_members({"WangJL": {"name": "王经理"}, "stranger": {"name": "路人"}})
    for key, value in wecom_login_env(simulator, CONSOLE).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim):
    with TestClient(Starlette(routes=[*AUTH_ROUTES, *wecom_login.ROUTES]), base_url=CONSOLE) as test_client:
        yield test_client


@pytest.fixture
def manager(org, make_user):
    return make_user(Role.branch_manager, org["north"], username="bj_manager", wecom_userid="WangJL")


def error_of(response) -> str:
    return re.search(r'<p class="error" role="alert">([^<]+)</p>', response.text).group(1)


def test_login_page_offers_wecom_only_when_the_app_is_configured(client, monkeypatch):
    assert t("login.wecom_button") in client.get("/login").text
    assert 'href="/login/wecom"' in client.get("/login").text
    monkeypatch.setenv("WECOM_AGENT_ID", "")
    get_settings.cache_clear()
    assert t("login.wecom_button") not in client.get("/login").text
    refused = client.get("/login/wecom", follow_redirects=False)
    assert refused.status_code == 404 and error_of(refused) == t("login.wecom_disabled")


def test_start_redirects_to_the_qr_login_with_a_state_bound_to_the_browser(client, sim, session):
    response = client.get("/login/wecom", follow_redirects=False)
    assert response.status_code == 302
    target = urlsplit(response.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{sim.base_url}/wwlogin/sso/login"
    query = {key: values[0] for key, values in parse_qs(target.query).items()}
    assert query.keys() == {"login_type", "appid", "agentid", "redirect_uri", "state"}
    assert query["login_type"] == "CorpApp" and query["appid"] == sim.corp_id and query["agentid"] == sim.agent_id
    assert query["redirect_uri"] == f"{CONSOLE}/login/wecom/callback"
    assert re.fullmatch(r"[A-Za-z0-9]{32}", query["state"])
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{WECOM_STATE_COOKIE}=")
    for attribute in ("HttpOnly", "Max-Age=300", "Path=/login/wecom", "SameSite=lax"):
        assert attribute in cookie
    assert unsign_wecom_state(client.cookies.get(WECOM_STATE_COOKIE)) == query["state"]
    assert session.get(WeComLoginState, query["state"]).used_at is None


def test_inside_wecom_the_login_page_goes_straight_to_oauth(client, sim, manager, session):
    response = client.get("/login", headers={"User-Agent": WXWORK_UA}, follow_redirects=False)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"{sim.base_url}/connect/oauth2/authorize?") and location.endswith("#wechat_redirect")
    query = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
    assert query["response_type"] == "code" and query["scope"] == "snsapi_base"
    assert query["appid"] == sim.corp_id and query["agentid"] == sim.agent_id
    assert query["redirect_uri"] == f"{CONSOLE}/login/wecom/callback"
    assert unsign_wecom_state(client.cookies.get(WECOM_STATE_COOKIE)) == query["state"]
    # The member confirms; the console opens signed in.
    signed_in = client.get(scan(location, "WangJL"), headers={"User-Agent": WXWORK_UA}, follow_redirects=False)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    actor = sessions.resolve(session=session, token=unsign_session(client.cookies.get(SESSION_COOKIE)))
    assert actor.name == "bj_manager"
    # Right after a logout the page stays, or the logout would be undone at once.
    stays = client.get("/login?bye=1", headers={"User-Agent": WXWORK_UA}, follow_redirects=False)
    assert stays.status_code == 200 and t("login.logged_out") in stays.text


def test_qr_login_sets_the_same_session_cookie_as_password_login(client, manager, session):
    start = client.get("/login/wecom", follow_redirects=False)
    response = client.get(scan(start.headers["location"], "WangJL"), follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith(f"{SESSION_COOKIE}="))
    assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie and "Path=/" in session_cookie
    actor = sessions.resolve(session=session, token=unsign_session(client.cookies.get(SESSION_COOKIE)))
    assert actor.name == "bj_manager" and actor.role == Role.branch_manager


def test_replayed_callback_is_refused_on_the_login_page(client, manager, session):
    start = client.get("/login/wecom", follow_redirects=False)
    callback = scan(start.headers["location"], "WangJL")
    assert client.get(callback, follow_redirects=False).status_code == 303
    client.cookies.delete(SESSION_COOKIE)
    replay = client.get(callback, follow_redirects=False)  # the back button, say
    assert replay.status_code == 400 and error_of(replay) == t("login.wecom_state_used")
    assert SESSION_COOKIE not in client.cookies
    assert len(session.exec(select(LoginSession)).all()) == 1


def test_callback_without_the_browsers_state_cookie_is_refused(client, manager, session):
    start = client.get("/login/wecom", follow_redirects=False)
    callback = scan(start.headers["location"], "WangJL")
    client.cookies.clear()  # another browser opens the callback link
    response = client.get(callback, follow_redirects=False)
    assert response.status_code == 400 and error_of(response) == t("login.wecom_state_forged")
    assert session.exec(select(LoginSession)).first() is None


def test_unlinked_member_sees_one_sentence_and_no_session(client, manager, session):
    start = client.get("/login/wecom", follow_redirects=False)
    response = client.get(scan(start.headers["location"], "stranger"), follow_redirects=False)
    assert response.status_code == 401
    assert error_of(response) == t("login.wecom_not_linked", userid="stranger")
    assert session.exec(select(LoginSession)).first() is None


def test_wecom_unreachable_answers_503(client, manager, session, monkeypatch):
    start = client.get("/login/wecom", follow_redirects=False)
    callback = scan(start.headers["location"], "WangJL")
    monkeypatch.setattr(wecom_login.wecom_login, "LOGIN_RETRY", wecom_login.wecom_login.RetryPolicy(0.01, 0.02, 2))
    monkeypatch.setenv("WECOM_API_BASE", "http://127.0.0.1:9")
    get_settings.cache_clear()
    response = client.get(callback, follow_redirects=False)
    assert response.status_code == 503 and error_of(response) == t("login.wecom_unreachable")
    assert session.exec(select(LoginSession)).first() is None


def test_password_login_off_is_said_on_the_form_and_refused_but_for_hq_admin(client, org, make_user):
    from core import settings_store
    from core.auth.permissions import system_actor
    from db.engine import session_scope

    admin = make_user(Role.hq_admin, username="admin")
    operator = make_user(Role.hq_operator, username="operator")
    with session_scope() as db:
        settings_store.save(session=db, actor=system_actor("test"), key=sessions.PASSWORD_LOGIN_SETTING, value=False)
    form = client.get("/login")
    assert t("login.password_login_off_notice") in form.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    refused = client.post("/login", data={"username": "operator", "password": operator.password, "csrf_token": csrf},
                          follow_redirects=False)
    assert refused.status_code == 401 and error_of(refused) == t("login.password_login_off")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', refused.text).group(1)
    break_glass = client.post("/login", data={"username": "admin", "password": admin.password, "csrf_token": csrf},
                              follow_redirects=False)
    assert break_glass.status_code == 303 and SESSION_COOKIE in client.cookies


def test_a_bookmarked_page_opens_after_the_qr_login(client, manager):
    page = client.get("/login?next=%2Ffunnel").text
    assert 'href="/login/wecom?next=%2Ffunnel"' in page
    start = client.get("/login/wecom?next=%2Ffunnel", follow_redirects=False)
    response = client.get(scan(start.headers["location"], "WangJL"), follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/funnel"
    # Somewhere else than a console page is not followed.
    start = client.get("/login/wecom?next=https://evil.example/", follow_redirects=False)
    response = client.get(scan(start.headers["location"], "WangJL"), follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"

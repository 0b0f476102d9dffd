"""Passwords, lockout, sessions, cookies and the /login and /logout routes."""

import re
from datetime import timedelta

import pytest
from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from base.timeutil import utcnow
from console.web.auth_routes import ROUTES as AUTH_ROUTES
from console.web.cookies import SESSION_COOKIE, logout_token, sign_session, unsign_session
from console.web.health import ROUTES as HEALTH_ROUTES
from core.auth import lockout, passwords, sessions
from db.models import LoginSession, Role
from i18n import t


@pytest.fixture
def client(db_url):
    return TestClient(Starlette(routes=[*AUTH_ROUTES, *HEALTH_ROUTES]), base_url="http://127.0.0.1")


def csrf_of(response) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', response.text).group(1)


def post_login(client, username, password, csrf=None):
    form = client.get("/login")
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf_of(form) if csrf is None else csrf},
                       follow_redirects=False)


def test_password_hashes_are_argon2_and_salted():
    first, second = passwords.hash_password("s3cret-pass"), passwords.hash_password("s3cret-pass")
    assert first.startswith("$argon2id$") and first != second
    assert passwords.verify_password(first, "s3cret-pass")
    assert not passwords.verify_password(first, "s3cret-pasS")
    assert not passwords.verify_password(None, "anything")  # unknown user: still a full verification
    assert not passwords.verify_password("not-a-hash", "anything")


def test_login_sets_httponly_lax_cookie_and_session_resolves(client, org, make_user, session):
    user = make_user(Role.hq_operator, username="op")
    response = post_login(client, "OP", user.password)  # usernames are case-insensitive
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    token = unsign_session(client.cookies.get(SESSION_COOKIE))
    actor = sessions.resolve(session=session, token=token)
    assert actor.name == "op" and actor.role == Role.hq_operator
    stored = session.exec(select(LoginSession)).one()
    assert stored.token_hash != token  # only a hash of the token is kept


def test_unknown_user_and_wrong_password_answer_alike(client, org, make_user):
    make_user(Role.viewer, username="known")
    unknown = post_login(client, "nobody", "whatever-123")
    wrong = post_login(client, "known", "whatever-123")
    assert unknown.status_code == wrong.status_code == 401
    assert t("login.bad_credentials") in unknown.text and t("login.bad_credentials") in wrong.text


def test_missing_or_forged_csrf_token_is_refused(client, org, make_user):
    user = make_user(Role.viewer, username="v")
    assert post_login(client, "v", user.password, csrf="").status_code == 400
    assert post_login(client, "v", user.password, csrf="forged").status_code == 400
    fresh = TestClient(client.app, base_url="http://127.0.0.1")  # no CSRF cookie at all
    response = fresh.post("/login", data={"username": "v", "password": user.password, "csrf_token": "x"})
    assert response.status_code == 400 and t("login.csrf_failed") in response.text


def test_lockout_after_five_failures_even_with_the_right_password(client, org, make_user, session):
    user = make_user(Role.hq_admin, username="boss")
    for _ in range(5):
        assert post_login(client, "boss", "wrong-password").status_code == 401
    locked = post_login(client, "boss", user.password)
    assert locked.status_code == 401 and t("login.locked_out", minutes=15) in locked.text
    # Unknown usernames lock out the same way, revealing nothing.
    for _ in range(5):
        post_login(client, "ghost", "x-password")
    assert t("login.locked_out", minutes=15) in post_login(client, "ghost", "x-password").text
    assert lockout.hold(session=session, username="boss", ip="testclient",
                        now=utcnow() + timedelta(minutes=16)) is None


def test_disabled_and_expired_users_cannot_log_in(client, org, make_user):
    disabled = make_user(Role.viewer, username="gone", disabled=True)
    expired = make_user(Role.hq_operator, username="agency", expires_at=utcnow() - timedelta(minutes=1))
    for user in (disabled, expired):
        response = post_login(client, user.user.username, user.password)
        assert response.status_code == 401 and t("login.account_inactive") in response.text


def test_idle_session_expires_after_12_hours(org, make_user, login_token, session):
    user = make_user(Role.viewer)
    token = login_token(user)
    assert sessions.resolve(session=session, token=token) is not None
    row = session.exec(select(LoginSession)).one()
    row.last_seen_at = utcnow() - sessions.IDLE_TIMEOUT - timedelta(seconds=1)
    session.add(row)
    session.commit()
    assert sessions.resolve(session=session, token=token) is None


def test_session_ends_when_agency_user_expires(org, make_user, login_token, session):
    user = make_user(Role.hq_operator, org["south"], expires_at=utcnow() + timedelta(hours=1))
    token = login_token(user)
    assert sessions.resolve(session=session, token=token).branch_scope == org["south"].id
    user.user.expires_at = utcnow() - timedelta(seconds=1)
    session.add(user.user)
    session.commit()
    assert sessions.resolve(session=session, token=token) is None
    assert session.exec(select(LoginSession)).one().revoked_at is not None


def test_tampered_cookie_is_ignored():
    signed = sign_session("token-value")
    assert unsign_session(signed) == "token-value"
    assert unsign_session(signed[:-2] + ("A" if signed[-2] != "A" else "B") + signed[-1]) is None
    assert unsign_session("token-value") is None
    assert unsign_session(None) is None


def test_logout_needs_the_session_bound_token_and_revokes(client, org, make_user, session):
    user = make_user(Role.viewer, username="reader")
    post_login(client, "reader", user.password)
    token = unsign_session(client.cookies.get(SESSION_COOKIE))
    assert client.get("/logout?t=forged", follow_redirects=False).headers["location"] == "/"
    assert sessions.resolve(session=session, token=token) is not None
    response = client.get(f"/logout?t={logout_token(token)}", follow_redirects=False)
    assert response.headers["location"] == "/login?bye=1"
    session.expire_all()
    assert sessions.resolve(session=session, token=token) is None


def test_healthz_reports_database_and_scheduler(client):
    body = client.get("/healthz").json()
    assert body["database"] == "ok" and body["scheduler"] == "missing"


def test_healthz_with_the_database_down_is_503_and_names_no_host(monkeypatch):
    from base.config import get_settings

    monkeypatch.setenv("DATABASE_URL", "postgresql://console:pw@127.0.0.1:9/secretdb")
    get_settings.cache_clear()
    client = TestClient(Starlette(routes=HEALTH_ROUTES), base_url="http://127.0.0.1")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable"}
    assert "secretdb" not in response.text and ":9" not in response.text

"""Lock-out is not a weapon: failures from one address hold only that address,
attempts during a hold neither count nor extend it, guessing from many addresses
is slowed (never locked), HQ's administrator and the shell unlock at once, and
password hashing runs a few at a time however many logins arrive."""

import threading
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from base.errors import PermissionDenied
from base.timeutil import utcnow
from console.cli import main as cli
from core.auth import lockout, passwords, sessions
from core.auth import users as user_service
from db.models import AuditEntry, LoginAttempt, Role


def attempt(session, username, password, ip):
    result = sessions.log_in(session=session, username=username, password=password, ip=ip)
    session.commit()
    return result


def back(session, by: timedelta) -> None:
    """Every recorded attempt happened `by` earlier."""
    for row in session.exec(select(LoginAttempt)).all():
        row.attempted_at -= by
        session.add(row)
    session.commit()


def test_failures_from_one_address_do_not_lock_the_user_out_from_another(session, org, make_user):
    user = make_user(Role.hq_operator, username="op")
    for _ in range(5):
        assert attempt(session, "op", "wrong-password", "203.0.113.9").error_key == "login.bad_credentials"
    held = attempt(session, "op", user.password, "203.0.113.9")
    assert held.error_key == "login.locked_out" and held.error_params == {"minutes": "15"}
    assert attempt(session, "op", user.password, "198.51.100.7").ok


def test_attempts_during_a_lock_neither_count_nor_extend_it(session, org, make_user):
    user = make_user(Role.hq_operator, username="op")
    for _ in range(5):
        attempt(session, "op", "wrong-password", "203.0.113.9")
    # The lock began 14 minutes ago; the attacker keeps trying until now.
    back(session, timedelta(minutes=14))
    for _ in range(10):
        assert attempt(session, "op", "wrong-password", "203.0.113.9").error_key == "login.locked_out"
    assert len(session.exec(select(LoginAttempt)).all()) == 5
    assert lockout.hold(session=session, username="op", ip="203.0.113.9", now=utcnow() + timedelta(minutes=1)) is None
    back(session, timedelta(minutes=1))
    assert attempt(session, "op", user.password, "203.0.113.9").ok


def test_guessing_from_many_addresses_is_slowed_not_locked(session, org, make_user):
    user = make_user(Role.hq_operator, username="op")
    for n in range(lockout.USERNAME_FREE_FAILURES + 1):
        attempt(session, "op", "wrong-password", f"203.0.113.{n}")
    slowed = attempt(session, "op", user.password, "198.51.100.7")
    assert slowed.error_key == "login.slowed" and 1 <= int(slowed.error_params["seconds"]) <= 60
    later = utcnow() + lockout.USERNAME_MAX_WAIT
    assert lockout.hold(session=session, username="op", ip="198.51.100.7", now=later) is None
    for n in range(30):  # the wait grows, never past a minute
        session.add(LoginAttempt(username="op", succeeded=False, ip=f"192.0.2.{n}"))
    session.commit()
    held = lockout.hold(session=session, username="op", ip="198.51.100.7", now=utcnow())
    assert held is not None and held.key == "login.slowed" and int(held.params["seconds"]) <= 60
    assert lockout.hold(session=session, username="op", ip="198.51.100.7",
                        now=utcnow() + lockout.USERNAME_MAX_WAIT) is None


def test_the_admin_unlocks_on_the_users_page_service_and_the_shell(db_url, session, org, make_user):
    user = make_user(Role.viewer, username="v")
    admin = make_user(Role.hq_admin)
    for _ in range(5):
        attempt(session, "v", "wrong-password", "203.0.113.9")
    assert lockout.held_usernames(session=session, actor=admin.actor, now=utcnow()) == {"v"}
    with pytest.raises(PermissionDenied):
        user_service.unlock_user(session=session, actor=make_user(Role.hq_operator).actor, username="v")
    assert user_service.unlock_user(session=session, actor=admin.actor, username="V") == 5
    session.commit()
    assert attempt(session, "v", user.password, "203.0.113.9").ok
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "user.unlock")).one()
    assert entry.actor_name == admin.user.username

    for _ in range(5):
        attempt(session, "v", "wrong-password", "203.0.113.9")
    assert cli(["unlock-user", "--username", "v"]) == 0
    session.expire_all()
    assert attempt(session, "v", user.password, "203.0.113.9").ok
    assert cli(["unlock-user", "--username", "nobody"]) == 1


def test_password_hashing_runs_a_few_at_a_time(monkeypatch):
    running, most = 0, 0
    lock = threading.Lock()

    def slow_verify(_hash, _password):  # as argon2 does: the GIL released while it works
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return False

    monkeypatch.setattr(passwords, "_hasher", type("SlowHasher", (), {"verify": staticmethod(slow_verify)})())
    threads = [threading.Thread(target=passwords.verify_password, args=(None, "guess")) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == passwords.CONCURRENT_HASHES

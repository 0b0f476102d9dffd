"""A session used every few minutes still ends 7 days after login."""

from datetime import timedelta

from sqlmodel import select

from base.timeutil import utcnow
from core.auth import sessions
from db.models import LoginSession, Role


def test_a_session_in_daily_use_ends_seven_days_after_login(org, make_user, login_token, session):
    token = login_token(make_user(Role.hq_operator))
    row = session.exec(select(LoginSession)).one()
    row.created_at = utcnow() - timedelta(days=7) + timedelta(minutes=1)
    row.last_seen_at = utcnow() - timedelta(minutes=5)
    session.add(row)
    session.commit()
    assert sessions.resolve(session=session, token=token) is not None
    row.created_at = utcnow() - timedelta(days=7) - timedelta(seconds=1)
    row.last_seen_at = utcnow() - timedelta(minutes=5)
    session.add(row)
    session.commit()
    assert sessions.resolve(session=session, token=token) is None


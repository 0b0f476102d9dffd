"""Linking console users to WeCom members: one user per member (case-insensitive),
the same sentence whether the check or the unique index refuses, audited."""

import json

import pytest
from sqlmodel import select

from base.errors import InvalidInput
from core.auth import users
from core.auth.permissions import system_actor
from db.models import AuditEntry, Role, User

ADMIN = system_actor("admin")


def update(session, user: User, wecom_userid: str | None) -> User:
    return users.update_user(session=session, actor=ADMIN, user_id=user.id, expected_version=user.version,
                             data=users.UserUpdate(role=user.role, display_name=user.display_name, branch_code=None,
                                                   expires_at=None, disabled=False, wecom_userid=wecom_userid))


def test_link_change_and_unlink_are_audited(session, make_user):
    viewer = make_user(Role.viewer, username="viewer").user
    linked = update(session, viewer, " WangJL ")
    session.commit()
    assert linked.wecom_userid == "WangJL"
    unlinked = update(session, linked, "")
    session.commit()
    assert unlinked.wecom_userid is None
    entries = session.exec(select(AuditEntry).where(AuditEntry.action == "user.update").order_by(AuditEntry.id)).all()
    assert [(json.loads(e.before_json)["wecom_userid"], json.loads(e.after_json)["wecom_userid"])
            for e in entries] == [(None, "WangJL"), ("WangJL", None)]


def test_a_member_links_to_one_user_only_in_any_letter_case(session, make_user):
    make_user(Role.viewer, username="first", wecom_userid="WangJL")
    second = make_user(Role.viewer, username="second").user
    with pytest.raises(InvalidInput) as refused:
        update(session, second, "wangjl")
    assert refused.value.key == "users.wecom_userid_taken"
    session.rollback()
    with pytest.raises(InvalidInput) as refused:
        users.create_user(session=session, actor=ADMIN, data=users.UserCreate(
            username="third", role="viewer", password="long-enough-pw", wecom_userid="WANGJL"))
    assert refused.value.key == "users.wecom_userid_taken"


def test_the_unique_index_refuses_with_the_same_sentence(session, make_user, monkeypatch):
    """Two admins linking the same member at once: both checks pass, the index settles it."""
    make_user(Role.viewer, username="first", wecom_userid="WangJL")
    second = make_user(Role.viewer, username="second").user
    monkeypatch.setattr(users, "linked_user", lambda **_kwargs: None)
    with pytest.raises(InvalidInput) as refused:
        update(session, second, "wangjl")
    assert refused.value.key == "users.wecom_userid_taken" and refused.value.params == {"userid": "wangjl"}
    session.rollback()
    with pytest.raises(InvalidInput) as refused:
        users.create_user(session=session, actor=ADMIN, data=users.UserCreate(
            username="third", role="viewer", password="long-enough-pw", wecom_userid="WANGJL"))
    assert refused.value.key == "users.wecom_userid_taken"
    session.rollback()
    assert session.exec(select(User).where(User.username == "third")).first() is None

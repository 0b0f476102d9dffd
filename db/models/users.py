"""Console users, their login sessions and attempts, and API keys for machines."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, DateTime, Index, String, func
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow
from db.typed import table_of


class Role(StrEnum):
    hq_admin = "hq_admin"
    hq_operator = "hq_operator"
    branch_manager = "branch_manager"
    viewer = "viewer"


class UserBase(SQLModel):
    username: str = Field(sa_column=Column(String(64), nullable=False))
    display_name: str = Field(default="", max_length=100)
    role: str = Field(max_length=32)
    # The branch scope: required for a branch manager, optional for an agency operator.
    branch_id: int | None = Field(default=None, foreign_key="branch.id")
    # Agency operators (代运营) have an end date; past it they cannot log in.
    expires_at: datetime | None = Field(default=None, sa_type=DateTime)
    disabled: bool = Field(default=False)
    # The WeCom member this user is (QR login, app messages); one user per member.
    wecom_userid: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


class User(UserBase, table=True):
    __table_args__ = (
        CheckConstraint(
            "role in ('hq_admin', 'hq_operator', 'branch_manager', 'viewer')", name="ck_user_role"
        ),
        CheckConstraint(
            "role <> 'branch_manager' OR branch_id IS NOT NULL", name="ck_user_branch_manager_branch"
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    password_hash: str = Field(max_length=255)
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


# username is case-insensitive unique, and so is the linked WeCom member (as in WeCom).
Index("uq_user_username_ci", func.lower(table_of(User).c.username), unique=True)
Index("uq_user_wecom_userid_ci", func.lower(table_of(User).c.wecom_userid), unique=True)


class WeComLoginState(SQLModel, table=True):
    """A WeCom login's `state`, single-use: the browser carries it in a signed
    short-lived cookie, this row makes sure it is taken once."""

    __tablename__ = "wecom_login_state"
    state: str = Field(sa_column=Column(String(64), primary_key=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    used_at: datetime | None = Field(default=None, sa_type=DateTime)


class LoginSession(SQLModel, table=True):
    """Server side of the session cookie; the cookie carries a signed random token
    whose SHA-256 is stored here, so a leaked table cannot be replayed."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime)
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=300)


class LoginAttempt(SQLModel, table=True):
    __table_args__ = (Index("ix_login_attempt_username_at", "username", "attempted_at"),)
    id: int | None = Field(default=None, primary_key=True)
    # Lower-cased, whether or not such a user exists: lockout must not reveal that.
    username: str = Field(max_length=64)
    attempted_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    succeeded: bool = Field(default=False)
    ip: str = Field(default="", max_length=64)


class ApiKey(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    # The first characters of the key, shown so that operators can tell keys apart.
    prefix: str = Field(max_length=16)
    key_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    created_by_id: int | None = Field(default=None, foreign_key="user.id")
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=DateTime)

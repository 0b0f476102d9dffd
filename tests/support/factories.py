"""Factories for the directory and bindings: branches, stores, WeCom accounts,
bindings and users, with sensible defaults and keyword overrides.

Each writes its row as a model and commits it: a test's set-up must survive the
rollback of the action under test, and the audit log holds only what that
action wrote (the services would audit the set-up too).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlmodel import Session, select

from base.timeutil import utcnow
from core.auth import sessions
from core.auth.passwords import hash_password
from core.auth.permissions import Actor
from db.models import Account, Binding, Branch, ContactCode, Role, Store, User

PASSWORD = "correct-horse-1"

# The org most tests run against: IDs with leading zeros ("000101" and "101"
# are two stores), one closed store, two branches.
ORG_BRANCHES = {"north": ("BJ01", "北京分公司"), "south": ("SH01", "上海分公司")}
ORG_STORES = [
    ("north", "000101", "北京朝阳大悦城店", "open"),
    ("north", "000102", "北京海淀银泰店", "open"),
    ("north", "101", "北京东城王府井店", "open"),
    ("north", "000103", "北京丰台万达店", "closed"),
    ("south", "000201", "上海浦东陆家嘴店", "open"),
    ("south", "000202", "上海徐汇港汇店", "open"),
]


Row = TypeVar("Row", Branch, Store, Account, Binding, User, ContactCode)


def _saved(session: Session, row: Row) -> Row:
    session.add(row)
    session.commit()
    return row


def make_branch(session: Session, code: str = "BJ01", *, name: str | None = None) -> Branch:
    return _saved(session, Branch(code=code, name=name or f"{code}分公司"))


def make_store(session: Session, branch: Branch, crm_store_id: str, *, name: str | None = None,
               status: str = "open") -> Store:
    return _saved(session, Store(crm_store_id=crm_store_id, name=name or f"{crm_store_id}店", branch_id=branch.id,
                                 status=status))


def make_account(session: Session, userid: str, *, name: str | None = None, status: str = "active",
                 count: int = 0, limit: int = 5000) -> Account:
    return _saved(session, Account(userid=userid, name=f"{userid}客服" if name is None else name,
                                   customer_count=count, capacity_limit=limit, status=status))


def make_binding(session: Session, store: Store, account: Account, *, shown: bool = False, reviewed: bool = False,
                 started_at: datetime | None = None, ended_at: datetime | None = None,
                 end_reason: str | None = None, code: bool = True) -> Binding:
    """A binding, current unless `ended_at` is given. `reviewed`: HQ reviewed it just now.
    `code`: the store has its contact code, as once the sidecar has made it."""
    binding = _saved(session, Binding(store_id=store.id, account_id=account.id, shown=shown,
                                      started_at=started_at or utcnow(), reviewed_at=utcnow() if reviewed else None,
                                      ended_at=ended_at, end_reason=end_reason))
    if code and ended_at is None:
        give_code(session, store, account.userid)
    return binding


def give_code(session: Session, store: Store, userid: str) -> ContactCode:
    """The store's contact code as WeCom made it (serving `userid`)."""
    code = session.exec(select(ContactCode).where(ContactCode.store_id == store.id)).first()
    if code is None:
        code = ContactCode(store_id=store.id, state=f"test-{store.id}")
    code.config_id, code.userid = code.config_id or f"cfg{store.id:06d}", userid
    code.qr_code = code.qr_code or f"https://wework.qpic.cn/wwpic/test{store.id}/0"
    return _saved(session, code)


def find_store(session: Session, crm_store_id: str) -> Store:
    return session.exec(select(Store).where(Store.crm_store_id == crm_store_id)).one()


def bind(session: Session, crm_store_id: str, userid: str, *, shown: bool = False, reviewed: bool = False,
         count: int = 0, limit: int = 5000, status: str = "active", name: str | None = None,
         code: bool = True) -> Binding:
    """A current binding of the existing store to a new account."""
    account = make_account(session, userid, name=name, status=status, count=count, limit=limit)
    return make_binding(session, find_store(session, crm_store_id), account, shown=shown, reviewed=reviewed,
                        code=code)


def make_org(session: Session) -> dict[str, Branch]:
    """The ORG_BRANCHES and their ORG_STORES, by "north" / "south"."""
    branches = {key: make_branch(session, code, name=name) for key, (code, name) in ORG_BRANCHES.items()}
    for key, crm_store_id, name, status in ORG_STORES:
        make_store(session, branches[key], crm_store_id, name=name, status=status)
    return branches


@dataclass
class LoggedUser:
    user: User
    password: str
    actor: Actor


def make_user(session: Session, role: Role | str, branch: Branch | None = None, *, username: str | None = None,
              password: str = PASSWORD, **fields) -> LoggedUser:
    """A console user who can log in with `password`; named after the role unless `username` is given."""
    role = Role(role)
    user = _saved(session, User(username=username or role.value, role=role.value,
                                branch_id=branch.id if branch else None, password_hash=hash_password(password),
                                **fields))
    return LoggedUser(user, password, sessions.actor_for(user))

"""Demo data for WeCom people: the BJ branch's alerts as app messages to its
linked managers, the simulator's members read from the database, and the demo
member who leaves the company a few minutes after start."""

import random

from sqlmodel import Session, col, select

from base.config import get_settings
from db.models import Account, AccountStatus, AlertChannel, Binding, Branch, ChannelKind, Store, StoreStatus, User

APP_CHANNEL_BRANCH = "BJ01"


def seed_people(session: Session, rng: random.Random) -> None:
    settings = get_settings()
    if not settings.uses_wecom_simulator:
        return
    branch = session.exec(select(Branch).where(Branch.code == APP_CHANNEL_BRANCH)).first()
    if branch is None:
        return
    session.add(AlertChannel(name="北京分公司经理（企业微信应用消息，演示）", kind=ChannelKind.wecom_app,
                             url=f"{settings.WECOM_API_BASE.rstrip('/')}/cgi-bin/message/send",
                             branch_id=branch.id, to_branch_managers=True))
    session.flush()


def members_from_database(*, session: Session) -> dict[str, dict]:
    """Every account's member and every linked console user, active and with customer contact."""
    members = {userid: {"name": name} for userid, name in session.exec(select(Account.userid, Account.name)).all()}
    linked = session.exec(select(User.wecom_userid, User.display_name, User.username)
                          .where(col(User.wecom_userid).is_not(None))).all()
    members.update({userid: {"name": display_name or username} for userid, display_name, username in linked})
    return members


def leaving_member(*, session: Session, keep: set[str]) -> tuple[str, str] | None:
    """(userid, store name) of the member who leaves in the demo: the active account
    shown for the open BJ store with the lowest CRM store ID, other than those in `keep`
    (the growing ones). No store has a standby in the demo data, so its entry goes down."""
    rows = session.exec(
        select(Account.userid, Store.name)
        .join(Binding, col(Binding.account_id) == col(Account.id))
        .join(Store, col(Store.id) == col(Binding.store_id))
        .join(Branch, col(Branch.id) == col(Store.branch_id))
        .where(Branch.code == APP_CHANNEL_BRANCH, Store.status == StoreStatus.open,
               Account.status == AccountStatus.active, col(Binding.ended_at).is_(None), col(Binding.shown).is_(True))
        .order_by(col(Store.crm_store_id))).all()
    lowered = {userid.lower() for userid in keep}
    return next(((userid, name) for userid, name in rows if userid.lower() not in lowered), None)

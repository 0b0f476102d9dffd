"""THE entry rule (导流入口, DESIGN.md): the client may show a store's entry only
when the store is open, the binding is current, the flag is shown, the
account is active and not full, and the store's contact code exists (unless
HQ turned `codes.entry_needs_code` off for an App that renders entries another way).

The rule is one SQL expression, `reason_expr`, selected by the client API, the
export, the bindings and stores pages and the overview alike, so what the API
tells the App always matches what the console shows.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum, StrEnum
from functools import lru_cache
from urllib.parse import quote

from sqlalchemy import bindparam, case, exists, literal
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from core.auth.permissions import Actor, Capability, require
from db.models import Account, AccountStatus, Binding, ContactCode, SettingOverride, Store, StoreStatus
from db.typed import select_columns


class EntryReason(StrEnum):
    no_binding = "no_binding"
    hidden = "hidden"
    store_closed = "store_closed"
    account_disabled = "account_disabled"
    account_full = "account_full"
    no_code = "no_code"


# The console's name for a bound account that is standby (备用, not yet
# switched on). The API answers account_disabled for it: DESIGN.md fixes the
# API's reasons, while an operator needs to know the fix is "enable", not "replace".
ACCOUNT_STANDBY = "account_standby"

# Reasons that keep an entry hidden whatever the operator's flag says.
BLOCKING_REASONS = (EntryReason.store_closed, EntryReason.account_disabled, ACCOUNT_STANDBY,
                    EntryReason.account_full)


def current_binding_join() -> ColumnElement[bool]:
    """Store ⟕ Binding on the store's current binding."""
    return (col(Binding.store_id) == Store.id) & col(Binding.ended_at).is_(None)


def _setting_is(key: str, value_json: str) -> ColumnElement[bool]:
    """Whether an operator saved this value for the setting, read in the same
    query: no second round trip, and every process sees a change at once."""
    return exists().where(col(SettingOverride.key) == key,
                          col(SettingOverride.value_json) == value_json).correlate_except(SettingOverride)


def has_no_code(*, code_joined: bool = False) -> ColumnElement[bool]:
    """The store has no contact code in WeCom yet, and the App needs one. With
    `code_joined` the query left-joins the store's contact_code row itself."""
    if code_joined:
        missing: ColumnElement[bool] = col(ContactCode.config_id).is_(None)
    else:
        missing = ~exists().where(col(ContactCode.store_id) == Store.id,
                                  col(ContactCode.config_id).is_not(None)).correlate_except(ContactCode)
    return missing & ~_setting_is("codes.entry_needs_code", "false")


def reason_expr(*, standby_apart: bool = False, code_joined: bool = False) -> ColumnElement:
    """Why the entry is not visible, or NULL when it is, over Store ⟕ current
    Binding ⟕ Account. Serving problems come before the operator's flag: a hidden
    entry whose account is full still needs action. An account that is bound but
    not active (standby) is not serving, so the API counts it as disabled; with
    `standby_apart` (the console's wording) it is ACCOUNT_STANDBY instead. Which
    entries are visible is the same either way."""
    standby = [(col(Account.status) == AccountStatus.standby, literal(ACCOUNT_STANDBY))] if standby_apart else []
    return case(
        (col(Store.status) != StoreStatus.open, literal(EntryReason.store_closed.value)),
        (col(Binding.id).is_(None), literal(EntryReason.no_binding.value)),
        *standby,
        (col(Account.status) != AccountStatus.active, literal(EntryReason.account_disabled.value)),
        (col(Account.customer_count) >= col(Account.capacity_limit), literal(EntryReason.account_full.value)),
        (col(Binding.shown).is_(False), literal(EntryReason.hidden.value)),
        (has_no_code(code_joined=code_joined), literal(EntryReason.no_code.value)),
        else_=None,
    )


@dataclass(frozen=True)
class Entry:
    crm_store_id: str
    visible: bool
    wecom_userid: str | None
    wecom_name: str | None
    reason: str | None
    qr_code: str | None = None
    contact_link: str | None = None

    def as_json(self) -> dict:
        """The client API's shape. A hidden entry names no account, QR or link,
        so the App can never show one it should not."""
        body: dict = {"crm_store_id": self.crm_store_id, "visible": self.visible,
                      "wecom_userid": self.wecom_userid if self.visible else None,
                      "wecom_name": self.wecom_name if self.visible else None,
                      "qr_code": self.qr_code if self.visible else None,
                      "contact_link": self.contact_link if self.visible else None}
        if not self.visible:
            body["reason"] = self.reason
        return body


def contact_link(link_url: str, state: str) -> str:
    """The 获客链接 with `customer_channel=<state>`: WeCom hands the value back as
    the add's State, so the add is attributed to the store. (Built by hand: the
    API answers it on every request, and WeCom's link carries no such parameter.)"""
    return f"{link_url}{'&' if '?' in link_url else '?'}customer_channel={quote(state, safe='')}"


def _entry_query():
    return (
        select_columns(Store.crm_store_id, Account.userid, Account.name, reason_expr(code_joined=True),
                       ContactCode.qr_code, ContactCode.link_url, ContactCode.state,
                       _setting_is("codes.links_enabled", "true"))
        .select_from(Store)
        .join(Binding, current_binding_join(), isouter=True)
        .join(Account, col(Account.id) == Binding.account_id, isouter=True)
        .join(ContactCode, col(ContactCode.store_id) == Store.id, isouter=True)
    )


def _entry(row) -> Entry:
    crm_store_id, userid, name, reason, qr_code, link_url, state, links_on = row
    link = contact_link(link_url, state) if links_on and link_url and state else None
    return Entry(crm_store_id, reason is None, userid, name, reason, qr_code, link)


# Built once: the client API runs this per request, and building the statement
# costs more than running it.
_ENTRY_BY_ID = _entry_query().where(Store.crm_store_id == bindparam("crm_store_id"))


@lru_cache(maxsize=8)
def _compiled_lookup(dialect: Dialect) -> tuple[str, Callable[[str], list | dict]]:
    """The lookup as SQL text, and the driver parameters for one CRM store ID,
    compiled once per dialect: like a prepared statement, it skips SQLAlchemy's
    per-call compile and parameter work."""
    compiled = _ENTRY_BY_ID.compile(dialect=dialect)
    constants = {name: value.value if isinstance(value, Enum) else value
                 for name, value in compiled.construct_params({"crm_store_id": ""}).items()}
    order = compiled.positiontup
    if not order:
        return str(compiled), lambda crm_store_id: {**constants, "crm_store_id": crm_store_id}
    fixed, at = [constants[name] for name in order], order.index("crm_store_id")

    def positional(crm_store_id: str) -> list:
        params = list(fixed)
        params[at] = crm_store_id
        return params

    return str(compiled), positional


def entry_for_store(*, session: Session | Connection, actor: Actor, crm_store_id: str) -> Entry | None:
    """The entry of one store, or None when no such store exists. The CRM store
    ID is matched as text: "000123" and "123" are different stores. The client
    API passes a bare Connection: per request, a Session costs more than the query."""
    require(actor, Capability.view_directory)
    connection = session.connection() if isinstance(session, Session) else session
    if actor.branch_scope is not None:
        query = _ENTRY_BY_ID.where(Store.branch_id == actor.branch_scope)
        row = connection.execute(query, {"crm_store_id": crm_store_id}).first()
    else:
        # Straight to the driver: SQLAlchemy's execution and result machinery
        # costs twice the query itself, and this runs for every App request.
        sql, params = _compiled_lookup(connection.dialect)
        driver = connection.connection.dbapi_connection
        assert driver is not None  # the connection is checked out while `connection` is open
        cursor = driver.cursor()
        try:
            cursor.execute(sql, params(crm_store_id))
            rows = cursor.fetchall()    # to the end, so SQLite ends the read at once
        finally:
            cursor.close()
        row = rows[0] if rows else None
    return None if row is None else _entry(row)


def all_entries(*, session: Session, actor: Actor, batch: int = 2000) -> Iterator[Entry]:
    """Every store's entry, by CRM store ID, streamed in batches."""
    require(actor, Capability.view_directory)
    query = _entry_query().order_by(Store.crm_store_id)
    if actor.branch_scope is not None:
        query = query.where(Store.branch_id == actor.branch_scope)
    for row in session.exec(query.execution_options(yield_per=batch)):
        yield _entry(row)

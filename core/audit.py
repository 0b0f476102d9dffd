"""Writing and reading the audit log."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from core.auth.permissions import Actor, Capability, require
from db.fastsql import insert_many
from db.models import AuditEntry
from db.typed import table_of

# One renderer for every entry: keys sorted, Chinese as is. Built once, it
# renders the ~50,000 entries of a sheet commit in a fraction of a second.
_render = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str).encode


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else _render(value)


def record(
    *,
    session: Session,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str | int,
    branch_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry in the caller's transaction, so it lands with the change."""
    entry = AuditEntry(
        actor_user_id=actor.user_id,
        actor_name=actor.name,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        branch_id=branch_id,
        before_json=_dump(before),
        after_json=_dump(after),
    )
    session.add(entry)
    return entry


class Entry(NamedTuple):
    """One entry of `record_many`."""
    action: str
    entity_type: str
    entity_id: str | int
    branch_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def record_many(*, session: Session, actor: Actor, at: datetime, entries: list[Entry]) -> None:
    """Many entries in one bulk INSERT (a 50,000-row sheet commit), in the
    caller's transaction, rendered as `record` renders them."""
    insert_many(session.connection(), table_of(AuditEntry), [
        {"at": at, "actor_user_id": actor.user_id, "actor_name": actor.name, "action": e.action,
         "entity_type": e.entity_type, "entity_id": str(e.entity_id), "branch_id": e.branch_id,
         "before_json": _dump(e.before), "after_json": _dump(e.after)}
        for e in entries])


@dataclass(frozen=True)
class AuditFilter:
    actor_name: str | None = None
    action: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


# An export holds at most this many entries (newest first); the page says when more matched.
EXPORT_LIMIT = 100_000


def _conditions(actor: Actor, filters: AuditFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if actor.branch_scope is not None:
        conditions.append(col(AuditEntry.branch_id) == actor.branch_scope)
    if filters.actor_name:
        conditions.append(func.lower(col(AuditEntry.actor_name)) == filters.actor_name.strip().lower())
    if filters.action:
        conditions.append(col(AuditEntry.action) == filters.action)
    if filters.entity_type:
        conditions.append(col(AuditEntry.entity_type) == filters.entity_type)
    if filters.entity_id:
        conditions.append(col(AuditEntry.entity_id) == filters.entity_id.strip())
    if filters.since:
        conditions.append(col(AuditEntry.at) >= filters.since)
    if filters.until:
        conditions.append(col(AuditEntry.at) < filters.until)
    return conditions


def search(
    *, session: Session, actor: Actor, filters: AuditFilter, offset: int = 0, limit: int = 50
) -> tuple[list[AuditEntry], int]:
    """One page of entries, newest first, and the total; branch-scoped readers
    see only their branch's entries."""
    require(actor, Capability.view_audit)
    conditions = _conditions(actor, filters)
    total = session.exec(select(func.count()).select_from(AuditEntry).where(*conditions)).one()
    rows = session.exec(
        select(AuditEntry).where(*conditions)
        .order_by(col(AuditEntry.at).desc(), col(AuditEntry.id).desc())
        .offset(offset).limit(limit)
    ).all()
    return list(rows), total


def filter_choices(*, session: Session, actor: Actor) -> tuple[list[str], list[str]]:
    """The actions and entity types present in the entries this reader may see."""
    require(actor, Capability.view_audit)
    scope = [AuditEntry.branch_id == actor.branch_scope] if actor.branch_scope is not None else []
    actions = session.exec(select(AuditEntry.action).where(*scope).distinct().order_by(AuditEntry.action)).all()
    types = session.exec(
        select(AuditEntry.entity_type).where(*scope).distinct().order_by(AuditEntry.entity_type)).all()
    return list(actions), list(types)

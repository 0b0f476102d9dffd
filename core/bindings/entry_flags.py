"""Show or hide the entries of stores named by CRM store ID (`set-entries`): the
bindings page's bulk action for scripts, with the same checks, all or nothing.

The stores are looked up first: an unknown store, one without a current binding
or outside the actor's branch is refused with the others, nothing changed. The
current bindings, at the versions read here, then go through `review.set_shown`
(the page's action: locked, every row checked, audited)."""

from sqlmodel import Session, col

from core.auth.permissions import Actor, Capability, require
from core.bindings.review import BulkRefused, BulkResult, RowProblem, set_shown
from db.fastsql import one_of
from db.models import Binding, Store
from db.typed import select_columns


def set_entries(*, session: Session, actor: Actor, crm_store_ids: list[str], shown: bool) -> BulkResult:
    """The caller commits; BulkRefused names every store that stops the action."""
    require(actor, Capability.review_entries)
    wanted = list(dict.fromkeys(crm_id.strip() for crm_id in crm_store_ids if crm_id.strip()))
    found = {crm_id: (store_id, name, branch_id, binding_id, version) for crm_id, store_id, name, branch_id,
             binding_id, version in session.exec(
                 select_columns(Store.crm_store_id, Store.id, Store.name, Store.branch_id, Binding.id,
                                Binding.version)
                 .join(Binding, (col(Binding.store_id) == Store.id) & col(Binding.ended_at).is_(None), isouter=True)
                 .where(one_of(session.connection(), col(Store.crm_store_id), wanted))).all()}
    problems: list[RowProblem] = []
    versions: dict[int, int] = {}
    for crm_id in wanted:
        if crm_id not in found:
            problems.append(RowProblem(crm_id, "", "unknown_store"))
            continue
        _store_id, name, branch_id, binding_id, version = found[crm_id]
        if actor.branch_scope is not None and branch_id != actor.branch_scope:
            problems.append(RowProblem(crm_id, name, "out_of_scope"))
        elif binding_id is None or version is None:
            problems.append(RowProblem(crm_id, name, "no_binding"))
        else:
            versions[binding_id] = version
    if problems:
        raise BulkRefused("bindings.stores_refused", sorted(problems, key=lambda p: p.crm_store_id))
    return set_shown(session=session, actor=actor, versions=versions, shown=shown)

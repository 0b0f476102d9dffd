"""HQ review of bindings (绑定审核): search, show/hide one or many entries,
replace an account (换号), unbind, and a store's binding history.

Bulk actions are all or nothing: each row carries the version the operator saw;
if any row changed since, or any row cannot be shown, nothing is applied and the
refusal names every such row and why.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, or_, tuple_, update
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from base.errors import ConcurrentEdit, DomainError, InvalidInput, NotFound, PermissionDenied
from base.timeutil import utcnow
from core import audit, settings_store
from core.auth.permissions import Actor, Capability, require
from core.bindings import service as bindings
from core.bindings import standby
from core.bindings.entries import BLOCKING_REASONS, current_binding_join, reason_expr
from core.conflicts import lock_for_write, settled_races
from core.directory import accounts, known_members
from core.directory.known_members import NOT_CONFIGURED, MemberCheck
from core.import_runs import runs
from db.models import (
    Account,
    AccountStatus,
    Binding,
    BindingEndReason,
    Branch,
    Store,
    StoreStatus,
    SwitchReason,
    User,
)
from db.typed import select_columns

# SQLite caps bound parameters; two per row in the compare-and-set.
CHUNK = 400


class ReviewState(StrEnum):
    pending = "pending"
    reviewed = "reviewed"


class UsageBand(StrEnum):
    """Customer count ÷ capacity limit against the configured alert levels."""
    normal = "normal"        # below warn
    warn = "warn"            # warn ≤ usage < critical
    critical = "critical"    # critical ≤ usage < 100 %
    full = "full"            # ≥ 100 %


@dataclass(frozen=True)
class BindingFilter:
    branch_id: int | None = None
    review: str | None = None            # pending | reviewed
    shown: bool | None = None            # the operator's flag
    account_status: str | None = None    # active | standby | disabled
    usage_band: str | None = None        # normal | warn | critical | full
    entry: str | None = None             # "visible", an EntryReason or ACCOUNT_STANDBY
    search: str = ""                     # CRM store ID prefix, store name, userid prefix


@dataclass(frozen=True)
class BindingRow:
    binding_id: int
    version: int
    store_id: int
    crm_store_id: str
    store_name: str
    branch_id: int
    branch_code: str
    branch_name: str
    store_status: str
    account_id: int
    wecom_userid: str
    wecom_name: str
    account_status: str
    customer_count: int
    capacity_limit: int
    shown: bool
    started_at: datetime
    reviewed_at: datetime | None
    reviewed_by: str | None
    entry_reason: str | None             # None: the client shows the entry; standby apart (console wording)

    @property
    def usage(self) -> float:
        return self.customer_count / self.capacity_limit if self.capacity_limit else 0.0

    @property
    def visible(self) -> bool:
        return self.entry_reason is None


@dataclass(frozen=True)
class RowProblem:
    crm_store_id: str
    store_name: str
    # changed | store_closed | account_disabled | account_standby | account_full | wecom_<MemberProblem>
    reason: str


class BulkRefused(DomainError):
    """Nothing was applied; `problems` names each refused row and why."""

    def __init__(self, key: str, problems: list[RowProblem]) -> None:
        names = "、".join(p.crm_store_id for p in problems[:10])
        super().__init__(key, count=len(problems), stores=names + ("…" if len(problems) > 10 else ""))
        self.problems = problems


def _scoped(actor: Actor, branch_id: int | None) -> int | None:
    """The branch to restrict to: the actor's scope, or the filter's branch."""
    scope = actor.branch_scope
    if scope is not None:
        if branch_id is not None and branch_id != scope:
            raise PermissionDenied("error.branch_out_of_scope")
        return scope
    return branch_id


def _base_query(session: Session, actor: Actor, filters: BindingFilter):
    reviewer = aliased(User)
    reason = reason_expr(standby_apart=True).label("entry_reason")
    query = (
        select_columns(Binding.id, Binding.version, Store.id, Store.crm_store_id, Store.name, Branch.id,
                       Branch.code, Branch.name, Store.status, Account.id, Account.userid, Account.name,
                       Account.status, Account.customer_count, Account.capacity_limit, Binding.shown,
                       Binding.started_at, Binding.reviewed_at, reviewer.username, reason)
        .select_from(Binding)
        .join(Store, current_binding_join())
        .join(Branch, col(Branch.id) == Store.branch_id)
        .join(Account, col(Account.id) == Binding.account_id)
        .join(reviewer, col(reviewer.id) == Binding.reviewed_by_id, isouter=True)
    )
    conditions: list[ColumnElement[bool]] = []
    branch_id = _scoped(actor, filters.branch_id)
    if branch_id is not None:
        conditions.append(col(Store.branch_id) == branch_id)
    if filters.review == ReviewState.pending:
        conditions.append(col(Binding.reviewed_at).is_(None))
    elif filters.review == ReviewState.reviewed:
        conditions.append(col(Binding.reviewed_at).is_not(None))
    if filters.shown is not None:
        conditions.append(col(Binding.shown).is_(filters.shown))
    if filters.account_status:
        conditions.append(col(Account.status) == filters.account_status)
    if filters.usage_band:
        conditions.append(_usage_condition(session, filters.usage_band))
    if filters.entry == "visible":
        conditions.append(reason_expr().is_(None))
    elif filters.entry:
        conditions.append(reason_expr(standby_apart=True) == filters.entry)
    term = filters.search.strip()
    if term:
        conditions.append(or_(col(Store.crm_store_id).startswith(term, autoescape=True),
                              col(Store.name).contains(term, autoescape=True),
                              func.lower(col(Account.userid)).startswith(term.lower(), autoescape=True)))
    return query.where(*conditions)


def _usage_condition(session: Session, band: str):
    warn = settings_store.effective(session=session, key="capacity.warn_pct")
    critical = settings_store.effective(session=session, key="capacity.critical_pct")
    used, limit = Account.customer_count * 100, Account.capacity_limit
    if band == UsageBand.normal:
        return used < limit * warn
    if band == UsageBand.warn:
        return (used >= limit * warn) & (used < limit * critical)
    if band == UsageBand.critical:
        return (used >= limit * critical) & (used < limit * 100)
    if band == UsageBand.full:
        return used >= limit * 100
    raise InvalidInput("bindings.bad_usage_band", band=band)


def search_bindings(*, session: Session, actor: Actor, filters: BindingFilter, offset: int = 0,
                    limit: int = 50) -> tuple[list[BindingRow], int]:
    """One page of current bindings, by CRM store ID, and the total. Branch
    managers see their own branch only (read-only: acting needs review_entries)."""
    require(actor, Capability.view_directory)
    query = _base_query(session, actor, filters)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(Store.crm_store_id).offset(offset).limit(limit)).all()
    return [BindingRow(*row) for row in rows], total


@dataclass(frozen=True)
class Selected:
    """A row as the operator saw it when choosing a bulk action."""
    binding_id: int
    version: int
    shown: bool
    reviewed: bool
    crm_store_id: str
    store_name: str

    def would_change(self, shown: bool) -> bool:
        # Showing an already shown but unreviewed entry still records the review.
        return self.shown != shown or (shown and not self.reviewed)


def matching_rows(*, session: Session, actor: Actor, filters: BindingFilter) -> list[Selected]:
    """Every row the filter matches, with the version the confirmation is
    made against (a bulk action over "all matching" rows)."""
    require(actor, Capability.review_entries)
    query = _base_query(session, actor, filters).with_only_columns(
        Binding.id, Binding.version, Binding.shown, col(Binding.reviewed_at).is_not(None), Store.crm_store_id,
        Store.name).order_by(Store.crm_store_id)
    return [Selected(*row) for row in session.exec(query).all()]


@dataclass(frozen=True)
class ShowPlan:
    """What a bulk show/hide would do, worked out before the operator confirms:
    the rows that change, those already so, and those that will not change and why."""
    shown: bool
    selected: int
    changing: list[Selected]
    unchanged: list[Selected]
    refused: list[RowProblem]
    member_check: MemberCheck

    @property
    def versions(self) -> dict[int, int]:
        """What to confirm: every row that is not refused, at the version the plan saw."""
        return {s.binding_id: s.version for s in self.changing + self.unchanged}


def plan_shown(*, session: Session, actor: Actor, targets: list[Selected], shown: bool) -> ShowPlan:
    """Run every check `set_shown` makes (changed since, closed store, account disabled,
    standby or full, and when showing, whether WeCom knows the account) without writing,
    so the confirmation can say what will and will not change before it asks."""
    require(actor, Capability.review_entries)
    loaded = _load_rows(session, sorted({s.binding_id for s in targets}), lock=False)
    for row in loaded.values():
        require(actor, Capability.review_entries, branch_id=row[7])
    check = _member_check(loaded.values()) if shown else NOT_CONFIGURED
    changing: list[Selected] = []
    unchanged: list[Selected] = []
    refused: list[RowProblem] = []
    for target in sorted(targets, key=lambda s: s.crm_store_id):
        seen = loaded.get(target.binding_id)
        if seen is None or seen[2] is not None or seen[1] != target.version:
            refused.append(RowProblem(target.crm_store_id, target.store_name, "changed"))
            continue
        blocker = _show_blocker(seen, check) if shown else None
        if blocker is not None:
            refused.append(RowProblem(target.crm_store_id, target.store_name, blocker))
            continue
        fresh = Selected(target.binding_id, target.version, seen[3], seen[4] is not None, target.crm_store_id,
                         target.store_name)
        (changing if fresh.would_change(shown) else unchanged).append(fresh)
    return ShowPlan(shown, len(targets), changing, unchanged, refused, check)


def _member_check(rows) -> MemberCheck:
    return known_members.check_userids(row[8] for row in rows)


def _show_blocker(row: tuple, check: MemberCheck) -> str | None:
    """Why a loaded row's entry cannot be shown, or None."""
    if row[9] in BLOCKING_REASONS:
        return row[9]
    problem = check.problem(row[8])
    return None if problem is None else f"wecom_{problem.value}"


@dataclass(frozen=True)
class BulkResult:
    changed: int      # rows whose flag flipped
    unchanged: int    # rows already in the wanted state


def set_shown(*, session: Session, actor: Actor, versions: dict[int, int], shown: bool) -> BulkResult:
    """Show or hide the entries of many bindings, all or nothing.

    `versions` maps binding id → the version the operator saw. Refused as a
    whole when any row ended or changed since (BulkRefused "bindings.rows_changed"),
    or, when showing, when any row's store is closed or its account disabled,
    standby or full, or WeCom does not know the account as a member with customer
    contact ("bindings.cannot_show"). Showing marks the binding reviewed (who, when).

    The rows are read under lock (SQLite's write lock, PostgreSQL row locks in
    id order), so the check holds until commit for every row, also for rows
    already in the wanted state, which are not written."""
    require(actor, Capability.review_entries)
    if not versions:
        raise InvalidInput("bindings.nothing_selected")
    ids = sorted(versions)
    # WeCom is asked before the write lock is taken: nobody waits on it.
    check = _member_check(_load_rows(session, ids, lock=False).values()) if shown else NOT_CONFIGURED
    with settled_races("bindings.changed_during_save"):
        lock_for_write(session)
        runs.refuse_binding_writes(session)
        loaded = _load_rows(session, ids, lock=True)
        for row in loaded.values():
            require(actor, Capability.review_entries, branch_id=row[7])
        changed = [RowProblem(loaded[i][5] if i in loaded else str(i), loaded[i][6] if i in loaded else "",
                              "changed")
                   for i in ids
                   if i not in loaded or loaded[i][2] is not None or loaded[i][1] != versions[i]]
        if changed:
            raise BulkRefused("bindings.rows_changed", sorted(changed, key=lambda p: p.crm_store_id))
        if shown:
            # An ended binding was refused above, so the reason here is about the store and account.
            blocked = [RowProblem(row[5], row[6], blocker) for row in loaded.values()
                       if (blocker := _show_blocker(row, check)) is not None]
            if blocked:
                raise BulkRefused("bindings.cannot_show", sorted(blocked, key=lambda p: p.crm_store_id))
        to_change = [i for i in ids if Selected(i, versions[i], loaded[i][3], loaded[i][4] is not None,
                                                loaded[i][5], loaded[i][6]).would_change(shown)]
        now = utcnow()
        values = {"shown": shown, "version": Binding.version + 1, "updated_at": now}
        if shown:
            values |= {"reviewed_at": now, "reviewed_by_id": actor.user_id}
        for start in range(0, len(to_change), CHUNK):
            chunk = to_change[start:start + CHUNK]
            result = session.exec(
                update(Binding)
                .where(tuple_(col(Binding.id), col(Binding.version)).in_([(i, versions[i]) for i in chunk]),
                       col(Binding.ended_at).is_(None))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != len(chunk):
                # The version stays in the write as well as in the locked read: no path
                # writes over a version it did not check. The caller rolls back.
                raise ConcurrentEdit("bindings.changed_during_save")
        for i in to_change:
            row = loaded[i]
            audit.record(session=session, actor=actor, action="binding.show" if shown else "binding.hide",
                         entity_type="binding", entity_id=i, branch_id=row[7],
                         before={"store": row[5], "account": row[8], "shown": row[3],
                                 "reviewed": row[4] is not None, "version": row[1]},
                         after={"store": row[5], "account": row[8], "shown": shown,
                                "reviewed": shown or row[4] is not None, "version": row[1] + 1})
        session.flush()
    session.expire_all()
    return BulkResult(changed=len(to_change), unchanged=len(ids) - len(to_change))


def _load_rows(session: Session, ids: list[int], *, lock: bool) -> dict[int, tuple]:
    """The rows of `ids` (ascending) with what the checks need; with `lock`, locked
    until commit on PostgreSQL (FOR UPDATE; SQLite has no row locks, the caller holds
    the write lock). Ascending id order in every chunk keeps two bulk actions
    over overlapping rows from deadlocking."""
    loaded: dict[int, tuple] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        query = (
            select_columns(Binding.id, Binding.version, Binding.ended_at, Binding.shown, Binding.reviewed_at,
                           Store.crm_store_id, Store.name, Store.branch_id, Account.userid,
                           reason_expr(standby_apart=True))
            .select_from(Binding)
            .join(Store, col(Store.id) == Binding.store_id)
            .join(Account, col(Account.id) == Binding.account_id)
            .where(col(Binding.id).in_(chunk))
            .order_by(col(Binding.id))
        )
        if lock:
            query = query.with_for_update(of=Binding)
        for row in session.exec(query).all():
            loaded[row[0]] = row
    return loaded


def _current_binding(session: Session, actor: Actor, binding_id: int,
                     expected_version: int) -> tuple[Binding, Store, Account]:
    binding = session.get(Binding, binding_id)
    if binding is None:
        raise NotFound()
    store = session.get_one(Store, binding.store_id)
    require(actor, Capability.review_entries, branch_id=store.branch_id)
    if binding.ended_at is not None or binding.version != expected_version:
        raise ConcurrentEdit("bindings.changed_meanwhile", store=store.crm_store_id)
    return binding, store, session.get_one(Account, binding.account_id)


def replace_account(*, session: Session, actor: Actor, binding_id: int, expected_version: int, userid: str,
                    name: str = "", show_now: bool = False) -> Binding:
    """换号: move the store to another account, a standby or unbound one, or a
    new userid (created active), the way the automatic switch does
    (core.bindings.standby.move_store): the old binding ends `replaced`, the old
    account keeps its row and status for ongoing operation, and a shown entry
    stays up on the new account (the operator's choice counts as its review);
    a hidden one stays hidden unless the operator shows it at once. A shown
    entry is not moved to a full account. A branch-scoped operator may switch
    to a new userid or to an account whose last store was in the operator's branch.

    Two operators taking the same account at once: one wins, the other gets
    ConcurrentEdit "bindings.taken_meanwhile" and nothing is written."""
    userid = userid.strip()
    if not accounts.is_valid_userid(userid):
        raise InvalidInput("accounts.bad_userid", userid=userid)
    with settled_races("bindings.taken_meanwhile", account=userid):
        lock_for_write(session)
        runs.refuse_binding_writes(session)
        new = _replace(session, actor, binding_id, expected_version, userid, name, show_now)
        session.flush()
    return new


def _replace(session: Session, actor: Actor, binding_id: int, expected_version: int, userid: str, name: str,
             show_now: bool) -> Binding:
    old, store, old_account = _current_binding(session, actor, binding_id, expected_version)
    account = accounts.find_account(session=session, userid=userid)
    if account is None:
        account = accounts.create_account(session=session, actor=actor, userid=userid, name=name or userid,
                                          branch_id=store.branch_id)
    else:
        assert account.id is not None  # a loaded row has its key
        if account.id == old_account.id:
            raise InvalidInput("bindings.same_account", account=account.userid)
        scope = actor.branch_scope
        if scope is not None and accounts.last_branch(session=session, account_id=account.id) != scope:
            raise PermissionDenied("bindings.account_out_of_scope", account=account.userid)
        if account.status == AccountStatus.disabled:
            raise InvalidInput("bindings.account_disabled", account=account.userid)
        other = bindings.current_for_account(session=session, account_id=account.id)
        if other is not None:
            other_store = session.get_one(Store, other.store_id)
            raise InvalidInput("bindings.account_in_use", account=account.userid, store=other_store.crm_store_id)
        standby.refuse_if_reserved_elsewhere(session=session, account=account, store=store)
    shown = old.shown or show_now
    if show_now and store.status != StoreStatus.open:
        raise InvalidInput("bindings.cannot_show_store_closed", store=store.crm_store_id)
    if shown and account.customer_count >= account.capacity_limit:
        raise InvalidInput("bindings.cannot_show_account_full", store=store.crm_store_id, account=account.userid)
    return standby.move_store(session=session, actor=actor, store=store, binding=old,
                              expected_version=expected_version, account=account, reason=SwitchReason.replaced,
                              shown=shown, reviewed=shown).binding


def unbind(*, session: Session, actor: Actor, binding_id: int, expected_version: int) -> Binding:
    """End the binding as `unbound`; the store's entry hides (no_binding)."""
    with settled_races("bindings.changed_during_save"):
        lock_for_write(session)
        runs.refuse_binding_writes(session)
        binding = _current_binding(session, actor, binding_id, expected_version)[0]
        return bindings.end_binding(session=session, actor=actor, binding=binding,
                                    reason=BindingEndReason.unbound, expected_version=expected_version)

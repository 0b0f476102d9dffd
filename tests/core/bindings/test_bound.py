"""One meaning of "bound": the counters migration 0006's triggers keep behind
the binding rate equal a count by the code's definition (an open store with a
current binding), through every way a store or binding changes — a new store,
a binding started, a sheet commit (new and 换号), a review 换号 and unbind, a
store closed, reopened and moved to another branch, an account disabled, bulk
starts and ends — on SQLite and PostgreSQL."""

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from base.timeutil import utcnow
from core.auth.permissions import SYSTEM
from core.bindings import review
from core.bindings import service as bindings
from core.bindings.imports import commit, judge, read
from core.directory import accounts, stores
from db.engine import get_engine
from db.models import Account, AccountStatus, Binding, BindingEndReason, Branch, Store, StoreStatus
from tests.db.test_branch_stats import churn, counters
from tests.support.binding_sheets import csv_bytes
from tests.support.factories import find_store, make_account

STORE_HEADER = "分公司编码,分公司名称,CRM门店ID,门店名称,状态\n"
BRANCH_NAMES = {"BJ01": "北京分公司", "SH01": "上海分公司"}


def by_definition(session: Session) -> list[tuple]:
    """Per branch: stores, open stores and bound open stores, counted by the code's definition."""
    rows = session.exec(
        select(Branch.id, func.count(Store.id), func.count(Store.id).filter(Store.status == StoreStatus.open),
               func.count(Store.id).filter(bindings.counts_as_bound()))
        .join(Store, col(Store.branch_id) == Branch.id, isouter=True)
        .group_by(Branch.id).order_by(Branch.id)).all()
    return [tuple(row) for row in rows]


def store_list(session: Session, rows: dict[str, tuple[str, str]]) -> None:
    """Import the CRM store list: CRM store ID → (branch code, 营业/关闭)."""
    data = STORE_HEADER + "".join(f"{branch},{BRANCH_NAMES[branch]},{crm},门店{crm},{status}\n"
                                  for crm, (branch, status) in rows.items())
    result = stores.import_stores(session=session, actor=SYSTEM, data=data.encode(), filename="stores.csv")
    assert result.ok


def current(session: Session, crm_id: str) -> Binding:
    binding = bindings.current_for_store(session=session, store_id=find_store(session, crm_id).id)
    assert binding is not None
    return binding


def sheet_commit(session: Session, rows: list[list[str]]) -> None:
    parsed = read.parse_sheet(csv_bytes(rows), "bindings.csv")
    preview = judge.preview(session=session, actor=SYSTEM, parsed=parsed)
    assert preview.ok, [(r.row_number, r.errors) for r in preview.rows if r.errors]
    commit.commit(session=session, actor=SYSTEM, preview=preview, confirm_warnings=True)


def walk_every_transition(session: Session) -> list[str]:
    """Drive the stores and bindings through every kind of change, committing
    each; returns the steps after which the counters disagreed with the definition."""
    disagreed: list[str] = []

    def step(name: str) -> None:
        session.commit()
        if counters(session) != by_definition(session):
            disagreed.append(name)

    listed = {"000101": ("BJ01", "营业"), "000102": ("BJ01", "营业"), "000103": ("BJ01", "关闭"),
              "000201": ("SH01", "营业"), "000202": ("SH01", "营业")}
    store_list(session, listed)
    step("new stores")
    bindings.start_binding(session=session, actor=SYSTEM, store=find_store(session, "000101"),
                           account=make_account(session, "wx1"))
    bindings.start_binding(session=session, actor=SYSTEM, store=find_store(session, "000103"),
                           account=make_account(session, "wx3"))
    step("started (an open and a closed store)")
    sheet_commit(session, [["BJ01", "000101", "门店000101", "wx1b", "新客服"],
                           ["BJ01", "000102", "门店000102", "wx2", "客服"],
                           ["SH01", "000201", "门店000201", "wx4", "客服"]])
    step("sheet commit: 换号 and new")
    review.replace_account(session=session, actor=SYSTEM, binding_id=current(session, "000102").id,
                           expected_version=current(session, "000102").version, userid="wx2b")
    step("review 换号")
    review.unbind(session=session, actor=SYSTEM, binding_id=current(session, "000201").id,
                  expected_version=current(session, "000201").version)
    step("unbind")
    store_list(session, listed | {"000101": ("BJ01", "关闭")})
    step("bound store closed")
    store_list(session, listed | {"000103": ("BJ01", "营业")})
    step("closed store still bound reopened; closed one reopened unbound")
    bindings.start_binding(session=session, actor=SYSTEM, store=find_store(session, "000101"),
                           account=make_account(session, "wx1c"))
    step("reopened store bound again")
    store_list(session, listed | {"000103": ("BJ01", "营业"), "000102": ("SH01", "营业")})
    step("bound store moved to another branch")
    disabled = accounts.find_account(session=session, userid="wx2b")
    accounts.update_account(session=session, actor=SYSTEM, account_id=disabled.id,
                            expected_version=disabled.version, capacity_limit=disabled.capacity_limit,
                            status=AccountStatus.disabled)
    step("account disabled")
    ends = []
    for crm in ("000101", "000102", "000103"):
        ending = current(session, crm)
        ends.append(bindings.End(ending.id, ending.version, find_store(session, crm).branch_id, crm,
                                 session.get_one(Account, ending.account_id).userid, ending.shown))
    bindings.end_many(session=session, actor=SYSTEM, ends=ends, reason=BindingEndReason.unbound, at=utcnow())
    step("bulk end")
    starts = []
    for crm, userid in (("000101", "wx5"), ("000103", "wx6"), ("000202", "wx7")):
        bound = find_store(session, crm)
        starts.append(bindings.Start(bound.id, make_account(session, userid).id, bound.branch_id, crm, userid))
    bindings.start_many(session=session, actor=SYSTEM, starts=starts, at=utcnow())
    step("bulk start")
    return disagreed


def test_counters_equal_the_definition_through_every_transition_on_sqlite(session):
    assert walk_every_transition(session) == []
    # BJ01: 000101 and 000103 bound again in bulk; SH01: 000202 (000102 moved there and ended, 000201 unbound).
    assert [row[1:] for row in counters(session)] == [(2, 2, 2), (3, 3, 1)]


@pytest.mark.postgres
def test_counters_equal_the_definition_through_every_transition_on_postgres(pg_url):
    with Session(get_engine(pg_url), expire_on_commit=False) as session:
        assert walk_every_transition(session) == []


def test_counters_equal_the_definition_under_raw_writes(session):
    churn(session)
    assert counters(session) == by_definition(session)


@pytest.mark.postgres
def test_counters_equal_the_definition_under_raw_writes_on_postgres(pg_url):
    with Session(get_engine(pg_url)) as session:
        churn(session)
        assert counters(session) == by_definition(session)

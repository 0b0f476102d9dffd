"""容量监控 at chain scale lists its accounts from the database a page at a time:
the counts cover every account of the scope, the table only the chosen page, and
the downloads every account of the filter, read when clicked."""

import io
from datetime import timedelta

import openpyxl
import pytest
from streamlit.delta_generator import DeltaGenerator

from base.timeutil import utcnow
from db.models import CountSnapshot, Role
from i18n import t
from tests.support.apptest import run_app
from tests.support.factories import make_account, make_binding, make_store

ACCOUNTS = 60


@pytest.fixture
def chain(session, org):
    """60 accounts of the north branch at 0 %, 1.6 %, … 94.4 % of 5,000; account i grew
    (i % 7) × 100 customers in the last 7 days."""
    now = utcnow()
    for i in range(ACCOUNTS):
        account = make_account(session, f"acct{i:03d}", count=i * 80, limit=5000)
        account.count_synced_at = now
        session.add(account)
        make_binding(session, make_store(session, org["north"], f"9{i:05d}"), account, shown=True)
        session.add(CountSnapshot(account_id=account.id, customer_count=max(0, i * 80 - (i % 7) * 100),
                                  taken_at=now - timedelta(days=7) + timedelta(minutes=5)))
    session.commit()


def userids(at):
    return list(at.dataframe[0].value[t("capacity.col.userid")])


def test_the_table_shows_one_page_of_every_account_riskiest_first(chain, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    at = run_app("capacity.py")
    assert not at.exception, at.exception
    assert [m.value for m in at.metric][:2] == [f"{ACCOUNTS:,}", "16"]  # 70 % and over: 44 … 59
    assert userids(at) == [f"acct{i:03d}" for i in range(59, 9, -1)]
    assert t("common.page_of", page=1, pages=2, total=ACCOUNTS) in [c.value for c in at.caption]
    at.number_input(key="capacity_list_page").set_value(2).run()
    assert userids(at) == [f"acct{i:03d}" for i in range(9, -1, -1)]


def test_sorting_and_the_over_warn_filter_are_the_databases(chain, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    at = run_app("capacity.py")
    at.selectbox(key="capacity_sort").set_value("growth").run()
    assert not at.exception, at.exception
    growth = list(at.dataframe[0].value[t("capacity.col.growth")])
    assert growth[0] == pytest.approx(600 / 7, rel=0.01) and growth == sorted(growth, reverse=True)
    at.checkbox(key="capacity_only_over").check().run()
    assert userids(at)[0] == "acct055"  # the fastest growing (600 in 7 days) of those over 70 %
    assert sorted(userids(at)) == [f"acct{i:03d}" for i in range(44, 60)]
    assert t("common.page_of", page=1, pages=1, total=16) in [c.value for c in at.caption]


def test_the_download_holds_every_account_of_the_filter(chain, make_user, as_user, monkeypatch):
    made: dict[str, bytes] = {}
    real = DeltaGenerator.download_button

    def capture(self, label, data, file_name=None, *args, **kwargs):
        made[file_name] = data() if callable(data) else data  # made when clicked
        return real(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", capture)
    as_user(make_user(Role.hq_operator))
    at = run_app("capacity.py")
    assert not at.exception, at.exception
    book = openpyxl.load_workbook(io.BytesIO(next(data for name, data in made.items() if name.endswith(".xlsx"))))
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0][0] == t("capacity.col.userid") and len(rows) == ACCOUNTS + 1

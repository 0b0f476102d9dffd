"""The 容量监控 page says which accounts are watched closely and how old each
count is, and flags a count older than twice its sync interval."""

from datetime import timedelta

from sqlmodel import select

from base.timeutil import utcnow
from db.models import Account, Role
from i18n import t
from tests.support.apptest import run_app
from tests.support.capacity import bind_accounts

# (store, userid, count of 5,000, seconds since listed or None): 3,300 is 66 %, 4 points below warn.
ACCOUNTS = [("000101", "hot_fresh", 3300, 30), ("000102", "hot_stale", 3300, 300),
            ("101", "cold_fresh", 1000, 900), ("000201", "cold_stale", 1000, 1500), ("000202", "never", 1000, None)]


def test_each_count_carries_its_age_and_stale_counts_are_flagged(session, org, make_user, as_user, monkeypatch):
    monkeypatch.setenv("CAPACITY_SYNC_INTERVAL_SECONDS", "600")
    from base.config import get_settings

    get_settings.cache_clear()
    bind_accounts(session, [(store, userid, count, 5000) for store, userid, count, _age in ACCOUNTS])
    now = utcnow()
    for _store, userid, _count, age in ACCOUNTS:
        account = session.exec(select(Account).where(Account.userid == userid)).one()
        account.count_synced_at = None if age is None else now - timedelta(seconds=age)
        session.add(account)
    session.commit()
    as_user(make_user(Role.hq_operator))
    at = run_app("capacity.py")
    assert not at.exception, at.exception
    rows = at.dataframe[0].value.set_index(t("capacity.col.userid"))
    ages = rows[t("capacity.col.count_age")].to_dict()
    stale = t("capacity.age.stale", age="{}")
    watched = t("capacity.age.watched", age="{}")
    assert ages == {
        "hot_fresh": watched.format(t("capacity.age.now")),
        # Watched closely: listed every minute, so 5 minutes is more than twice its interval.
        "hot_stale": watched.format(stale.format(t("capacity.age.minutes", minutes=5))),
        "cold_fresh": t("capacity.age.minutes", minutes=15),  # every 10 minutes: 20 at most
        "cold_stale": stale.format(t("capacity.age.minutes", minutes=25)),
        "never": t("capacity.age.never"),
    }
    assert [w.value for w in at.warning] == [t("capacity.watch.stale_summary", count="3")]
    assert t("capacity.watch.summary", hot="2", band=10, growth=10, minutes=10) in [c.value for c in at.caption]

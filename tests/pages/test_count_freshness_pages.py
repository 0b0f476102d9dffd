"""Every customer count carries its age, flagged 过旧 once older than twice its sync
interval (a minute for an account watched closely): 企微账号, 绑定审核 (table, the
binding's detail, its standby list) and 概览; 立即同步客户数 on 企微账号 shows how far
the sweep got and says when no sidecar runs."""

from datetime import timedelta

import pytest
from sqlmodel import select

from base.timeutil import utcnow
from console.ui.text import md
from core.scheduling import lease
from db.models import Account, JobRequest, Role, StandbyAccount
from i18n import t
from tests.support.apptest import run_app
from tests.support.capacity import bind_accounts
from tests.support.factories import find_store, make_account

# (store, userid, count of 5,000, seconds since listed or None): 3,300 is 66 %, 4 points below warn.
ACCOUNTS = [("000101", "hot_fresh", 3300, 30), ("000102", "hot_stale", 3300, 300),
            ("101", "cold_fresh", 1000, 900), ("000201", "cold_stale", 1000, 1500), ("000202", "never", 1000, None)]
STALE = t("capacity.age.stale", age="{}")
WATCHED = t("capacity.age.watched", age="{}")
AGES = {
    "hot_fresh": WATCHED.format(t("capacity.age.now")),
    # Watched closely: listed every minute, so 5 minutes is more than twice its interval.
    "hot_stale": WATCHED.format(STALE.format(t("capacity.age.minutes", minutes=5))),
    "cold_fresh": t("capacity.age.minutes", minutes=15),  # every 10 minutes: stale after 20
    "cold_stale": STALE.format(t("capacity.age.minutes", minutes=25)),
    "never": t("capacity.age.never"),
}


@pytest.fixture
def listed(session, org, monkeypatch):
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


def by_userid(frame, userid_col: str, value_col: str) -> dict:
    return dict(zip(frame[t(userid_col)], frame[t(value_col)], strict=True))


def test_the_accounts_page_shows_each_count_s_age_and_flags_the_stale(listed, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    at = run_app("accounts.py")
    assert not at.exception, at.exception
    assert by_userid(at.dataframe[0].value, "accounts.col.userid", "accounts.col.count_age") == AGES
    assert t("accounts.stale_summary", stale="3", accounts="5") in [w.value for w in at.warning]


def test_a_disabled_account_s_count_keeps_its_age_but_is_not_flagged(session, org, make_user, as_user):
    """Disabled accounts are not synced at all: an old count there is expected, not a sync problem."""
    retired = make_account(session, "retired", status="disabled", count=4000)
    retired.count_synced_at = utcnow() - timedelta(hours=3)
    session.add(retired)
    session.commit()
    as_user(make_user(Role.hq_operator))
    at = run_app("accounts.py")
    assert not at.exception, at.exception
    assert by_userid(at.dataframe[0].value, "accounts.col.userid", "accounts.col.count_age") == {
        "retired": t("capacity.age.hours", hours=3)}
    assert not at.warning


def test_a_branch_manager_sees_the_ages_and_stale_figure_of_the_own_branch(listed, org, make_user, as_user):
    as_user(make_user(Role.branch_manager, org["south"]))
    at = run_app("accounts.py")
    assert not at.exception, at.exception
    assert by_userid(at.dataframe[0].value, "accounts.col.userid", "accounts.col.count_age") == {
        "cold_stale": AGES["cold_stale"], "never": AGES["never"]}
    assert t("accounts.stale_summary", stale="2", accounts="2") in [w.value for w in at.warning]


def test_the_bindings_page_shows_each_binding_s_count_age_and_its_detail(listed, session, make_user, as_user):
    spare = make_account(session, "spare101", status="standby", count=100)
    session.add(StandbyAccount(store_id=find_store(session, "000101").id, account_id=spare.id))
    session.commit()
    as_user(make_user(Role.hq_operator))
    at = run_app("bindings.py")
    assert not at.exception, at.exception
    frame = at.dataframe[0].value
    assert by_userid(frame, "bindings.col.wecom_userid", "bindings.col.count_age") == AGES
    # The reviewer's columns stay first; the age sits with the count, after them.
    columns = list(frame.columns)
    assert columns.index(t("bindings.col.count_age")) == columns.index(t("bindings.col.capacity_limit")) + 1
    assert columns.index(t("bindings.col.started")) < columns.index(t("bindings.col.count_age"))

    at.session_state[f"review_table_{at.session_state['review_table_generation']}"] = {
        "selection": {"rows": [1], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    assert md("bindings.row_count", userid="hot_stale", count="3,300", limit="5,000", pct="66.0",
              age=AGES["hot_stale"]) in [c.value for c in at.caption]
    at.session_state[f"review_table_{at.session_state['review_table_generation']}"] = {
        "selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    standby_list = next(f.value for f in at.dataframe if t("standby.col.position") in f.value.columns)
    assert list(standby_list[t("bindings.col.count_age")]) == [t("capacity.age.never")]


def test_the_overview_says_how_old_the_counts_behind_its_tiles_are(listed, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    at = run_app("overview.py")
    assert not at.exception, at.exception
    fresh = t("overview.counts_fresh", accounts="5", oldest=t("capacity.age.minutes", minutes=25))
    assert fresh + t("overview.counts_stale", stale="3") in [w.value for w in at.warning]


def test_the_overview_says_when_no_count_was_ever_synced(session, org, make_user, as_user):
    bind_accounts(session, [("000101", "fresh_start", 0, 5000)])
    as_user(make_user(Role.hq_operator))
    at = run_app("overview.py")
    assert not at.exception, at.exception
    assert t("overview.counts_never", accounts="1") in [w.value for w in at.warning]


def test_sync_now_on_the_accounts_page_queues_a_sweep_and_shows_its_progress(
        listed, session, make_user, as_user, monkeypatch):
    for key in ("WECOM_CORP_ID", "WECOM_SECRET"):
        monkeypatch.setenv(key, "configured")
    from base.config import get_settings

    get_settings.cache_clear()
    as_user(make_user(Role.hq_operator))
    at = run_app("accounts.py")
    at.button(key="accounts_sync_now").click().run()
    assert not at.exception, at.exception
    assert t("capacity.sync_queued") in [s.value for s in at.success]
    assert len(session.exec(select(JobRequest)).all()) == 1
    [bar] = at.get("progress")
    assert "已完成 0 / 5 个" in bar.proto.text
    # No sidecar has ever run: the sweep cannot start, and the page says so.
    assert t("capacity.sweep.no_sidecar") in [w.value for w in at.warning]
    assert t("capacity.sweep.queued") in [c.value for c in at.caption]

    # The sidecar runs and lists every account.
    assert lease.try_acquire(session=session, holder="sidecar-1")
    for account in session.exec(select(Account)).all():
        account.count_synced_at = utcnow()
        session.add(account)
    session.commit()
    at.run()
    assert not at.get("progress")
    assert not [w for w in at.warning if w.value == t("capacity.sweep.no_sidecar")]
    assert any(c.value.startswith("立即同步客户数") and "已完成：5 个账号已同步" in c.value for c in at.caption)


def test_a_branch_manager_has_no_sync_now(listed, org, make_user, as_user):
    as_user(make_user(Role.branch_manager, org["north"]))
    at = run_app("accounts.py")
    assert not at.exception, at.exception
    assert not [b for b in at.button if b.label == t("capacity.sync_now")]

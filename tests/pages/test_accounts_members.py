"""The accounts page: why an account was disabled when its member left WeCom,
and the departed members' customers awaiting transfer, by store and scoped by
branch like the rest of the page."""

from datetime import datetime

from base.timeutil import format_display
from core.directory.members import SYNC_ACTOR, member_changed
from db.models import Role, UnassignedCustomer
from i18n import t
from tests.support.apptest import run_app
from tests.support.capacity import bind_accounts
from tests.support.factories import make_account

LEFT_AT = datetime(2026, 11, 20, 2, 30)


def column(at, name: str) -> list:
    """The values of the first table on the page that has this column."""
    return next(list(frame.value[name]) for frame in at.dataframe if name in frame.value.columns)


def departed(session, org) -> None:
    """kf_bj (000101, north) and kf_sh (000201, south) left with 3 and 2 customers
    awaiting transfer; kf_gone never served a store."""
    bind_accounts(session, [("000101", "kf_bj", 800, 5000), ("000201", "kf_sh", 300, 5000)])
    make_account(session, "kf_gone", name="从未上岗")
    for userid in ("kf_bj", "kf_sh"):
        member_changed(session=session, actor=SYNC_ACTOR, userid=userid, status=5)
    session.add_all([UnassignedCustomer(handover_userid=userid, external_userid=f"wm{userid}{n}",
                                        dimission_time=LEFT_AT)
                     for userid, count in (("kf_bj", 3), ("kf_sh", 2), ("kf_gone", 1)) for n in range(count)])
    session.commit()


def test_hq_sees_the_reason_and_every_departed_member_by_store(session, org, make_user, as_user):
    departed(session, org)
    as_user(make_user(Role.hq_operator))
    at = run_app("accounts.py")
    assert not at.exception, at.exception
    reasons = dict(zip(column(at, t("accounts.col.userid")), column(at, t("accounts.col.status_reason")),
                       strict=True))
    assert reasons["kf_bj"].startswith("企业微信成员已离职（") and reasons["kf_bj"].endswith("账号已自动停用。")
    assert reasons["kf_gone"] == ""
    assert "#### " + t("accounts.departed.title") in [m.value for m in at.markdown]
    assert column(at, t("accounts.departed.col.store")) == ["000101 北京朝阳大悦城店", "000201 上海浦东陆家嘴店",
                                                            t("accounts.departed.no_store")]
    assert column(at, t("accounts.departed.col.userid")) == ["kf_bj", "kf_sh", "kf_gone"]
    assert column(at, t("accounts.departed.col.customers")) == [3, 2, 1]
    assert column(at, t("accounts.departed.col.dimission_time")) == [format_display(LEFT_AT)] * 3
    assert t("accounts.departed.store_total", store="000101 北京朝阳大悦城店", members=1, customers=3) in [
        m.value for m in at.text]
    # The expandable list: the chosen member's customers.
    assert column(at, t("accounts.departed.col.external_userid")) == ["wmkf_bj0", "wmkf_bj1", "wmkf_bj2"]
    at.selectbox(key="accounts_departed_member").select("kf_sh").run()
    assert not at.exception, at.exception
    assert column(at, t("accounts.departed.col.external_userid")) == ["wmkf_sh0", "wmkf_sh1"]


def test_a_branch_manager_sees_the_own_branchs_departed_members_only(session, org, make_user, as_user):
    departed(session, org)
    as_user(make_user(Role.branch_manager, org["south"]))
    at = run_app("accounts.py")
    assert not at.exception, at.exception
    assert column(at, t("accounts.departed.col.userid")) == ["kf_sh"]
    assert column(at, t("accounts.departed.col.external_userid")) == ["wmkf_sh0", "wmkf_sh1"]


def test_no_departed_members_says_so(session, org, make_user, as_user):
    as_user(make_user(Role.viewer))
    at = run_app("accounts.py")
    assert not at.exception, at.exception
    assert t("accounts.departed.none") in [c.value for c in at.caption]

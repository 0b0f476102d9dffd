"""告警 lists contact-code and 获客链接 incidents beside capacity alerts, through
AppTest: in words with their store, filtered by kind, acknowledged like any
alert, scoped (a branch's operator sees its stores' incidents, not the chain's quota)."""

from sqlmodel import select

from base.problems import problem
from base.timeutil import utcnow
from core.alerts.incidents import open_incident
from db.models import AlertLevel, CapacityAlert, Role
from i18n import t
from tests.support.apptest import run_app
from tests.support.factories import find_store, make_account


def add_alerts(session, org) -> dict[str, int]:
    now = utcnow()
    store = find_store(session, "000101")
    stale = open_incident(session=session, level=AlertLevel.code_stale, store_id=store.id, branch_id=org["north"].id,
                          now=now, text="门店活码未切换",
                          detail=problem("codes.incident.stale", old="u101", new="new101",
                                         reason_key="wecom.reason.no_customer_contact_permission", errcode=84074,
                                         errmsg="no permission"))
    quota = open_incident(session=session, level=AlertLevel.links_quota_low, store_id=None, branch_id=None, now=now,
                          text="获客额度不足", detail=problem("links.incident.quota_low", balance=19, total=1000,
                                                          level=20))
    account = make_account(session, "store000201")
    warn = CapacityAlert(account_id=account.id, level=AlertLevel.warn, level_pct=70, branch_id=org["south"].id,
                         customer_count=3600, capacity_limit=5000, opened_at=now)
    session.add(warn)
    session.commit()
    return {"stale": stale.id, "quota": quota.id, "warn": warn.id}


def table(at):
    return at.dataframe[0].value


def test_incidents_are_rows_of_the_alert_list_in_words(org, session, make_user, as_user):
    ids = add_alerts(session, org)
    as_user(make_user(Role.hq_operator))
    at = run_app("alerts.py")
    assert not at.exception, at.exception
    rows = table(at).set_index(t("alerts.col.id"))
    assert set(rows.index) == set(ids.values())
    stale = rows.loc[ids["stale"]]
    assert stale[t("alerts.col.level")] == "门店活码未切换"
    # the store, where a capacity alert names its account
    assert stale[t("alerts.col.account")] == "北京朝阳大悦城店（000101）"
    assert (stale[t("alerts.col.branch")], stale[t("alerts.col.usage")]) == ("北京分公司", "")
    quota = rows.loc[ids["quota"]]
    assert quota[t("alerts.col.level")] == "获客额度不足"
    assert quota[t("alerts.col.branch")] == t("alerts.chain")
    warn = rows.loc[ids["warn"]]
    assert (warn[t("alerts.col.account")], warn[t("alerts.col.usage")]) == ("store000201", "3,600/5,000")
    # what happened, in words, below the table
    details = next(m.value for m in at.markdown if m.value.startswith(f"- #{ids['stale']}")
                   or f"- #{ids['quota']}" in m.value)
    assert "北京朝阳大悦城店（000101）：二维码仍把客户送到 u101，门店当前账号是 new101" in details
    assert "没有客户联系权限（84074）" in details
    assert "总部：获客链接剩余额度 19（共 1000），低于提醒线 20。" in details
    page_text = " ".join([*map(str, table(at).to_numpy().ravel()), *(m.value for m in at.markdown)])
    assert not any(key in page_text for key in ("codes.", "links.", "wecom.reason"))

    at.segmented_control(key="alerts_kind").set_value("codes")
    at.run()
    assert set(table(at)[t("alerts.col.id")]) == {ids["stale"], ids["quota"]}
    at.segmented_control(key="alerts_kind").set_value("capacity")
    at.run()
    assert list(table(at)[t("alerts.col.id")]) == [ids["warn"]]


def test_an_operator_acknowledges_an_incident(org, session, make_user, as_user):
    ids = add_alerts(session, org)
    as_user(make_user(Role.hq_operator))
    at = run_app("alerts.py")
    at.multiselect(key="alerts_ack_ids").select(ids["stale"])
    next(b for b in at.button if b.label == t("alerts.ack_button")).click()
    at.run()
    assert not at.exception, at.exception
    assert at.success[0].value == t("alerts.acked", count=1)
    session.expire_all()
    assert session.get(CapacityAlert, ids["stale"]).acknowledged_at is not None
    at.segmented_control(key="alerts_status").set_value("unacknowledged")
    at.run()
    assert ids["stale"] not in set(table(at)[t("alerts.col.id")])


def test_a_branch_operator_sees_its_stores_incidents_not_the_chains_quota(org, session, make_user, as_user):
    ids = add_alerts(session, org)
    as_user(make_user(Role.hq_operator, org["north"]))
    at = run_app("alerts.py")
    assert not at.exception, at.exception
    assert list(table(at)[t("alerts.col.id")]) == [ids["stale"]]
    as_user(make_user(Role.hq_operator, org["south"]))
    at = run_app("alerts.py")
    assert list(table(at)[t("alerts.col.id")]) == [ids["warn"]]
    assert session.exec(select(CapacityAlert).where(CapacityAlert.id == ids["quota"])).one().acknowledged_at is None

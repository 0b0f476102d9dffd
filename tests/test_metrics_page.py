"""导流效果 in AppTest (figures, drill-down, branch scope) and the `metrics`
command (json and csv), on the hand-counted scenario."""

import csv
import io
import json

import pytest

from console.cli import main as cli_main
from console.messages import t
from db.models import Role
from tests.support import metrics_scenario as sc
from tests.support.apptest import run_app


@pytest.fixture
def world(session):
    return sc.load(session)


def open_funnel(at):
    at.date_input(key="funnel_from").set_value(sc.START)
    at.date_input(key="funnel_to").set_value(sc.END)
    at.run()
    assert not at.exception, at.exception
    return at


def metric(at, label_key: str) -> str:
    return next(m.value for m in at.metric if m.label == t(label_key))


def test_operator_sees_chain_figures_branches_and_drills_into_stores(world, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    at = open_funnel(run_app("funnel.py"))
    assert at.title[0].value == t("funnel.title")
    assert metric(at, "funnel.kpi.order_result_users") == "4"
    assert metric(at, "funnel.kpi.entry_ctr") == "25.0%"
    assert metric(at, "funnel.kpi.add_click_rate") == "66.7%"
    assert metric(at, "funnel.kpi.add_rate") == "66.7%"
    assert metric(at, "funnel.kpi.binding_rate") == "40.0%"
    assert any(t("funnel.unattributed", count=1) == c.value for c in at.caption)
    branches = at.dataframe[0].value
    assert list(branches[t("funnel.col.branch_code")]) == ["BJ01", "SH01"]
    assert list(branches[t("funnel.step.order_result_view")]) == [3, 2]
    assert list(branches[t("funnel.col.binding_rate")]) == [33.3, 50.0]
    at.selectbox(key="funnel_drill").set_value(world["north"].id)
    at.run()
    stores = at.dataframe[1].value
    assert list(stores[t("funnel.col.crm_store_id")]) == ["000101", "000102", "000103", "101"]
    assert list(stores[t("funnel.step.order_result_view")]) == [2, 1, 1, 0]
    assert at.expander  # the import section is there for HQ


def test_platform_filter_marks_add_rate_unavailable(world, make_user, as_user):
    as_user(make_user(Role.viewer))
    at = open_funnel(run_app("funnel.py"))
    at.selectbox(key="funnel_platform").set_value("app")
    at.run()
    assert metric(at, "funnel.kpi.order_result_users") == "3"
    assert metric(at, "funnel.kpi.add_rate") == t("common.none")
    assert not any(e.label == t("funnel.import") for e in at.expander)  # viewers do not import


def test_branch_manager_sees_own_branch_only(world, make_user, as_user):
    as_user(make_user(Role.branch_manager, world["south"]))
    at = open_funnel(run_app("funnel.py"))
    assert at.selectbox(key="funnel_branch").options == ["SH01 上海分公司"]
    assert metric(at, "funnel.kpi.order_result_users") == "2"
    assert list(at.dataframe[0].value[t("funnel.col.branch_code")]) == ["SH01"]


def test_cli_json_and_csv(world, capsys):
    assert cli_main(["metrics", "--from", "2026-11-01", "--to", "2026-11-03"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert (figures["from"], figures["to"]) == ("2026-11-01", "2026-11-03")
    for key, value in sc.EXPECTED["overall"].items():
        assert figures["overall"][key] == pytest.approx(value), key
    assert [b["branch_code"] for b in figures["branches"]] == ["BJ01", "SH01"]
    assert cli_main(["metrics", "--from", "2026-11-01", "--to", "2026-11-03", "--branch", "SH01",
                     "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["branch_code"] for r in rows] == ["", "SH01"]
    assert rows[1]["order_result_users"] == "2" and rows[1]["entry_ctr"] == "0.0"
    assert cli_main(["metrics", "--from", "2026-11-01", "--to", "2026-11-03", "--branch", "XX"]) == 1
    assert cli_main(["metrics", "--from", "2026-11-01", "--to", "yesterday"]) == 1

"""导流效果 in AppTest (figures, period-over-period deltas, drill-down, branch
scope, exports named and headed by their filters, the event-file import with
its progress bar) and the `metrics` command (json and csv), on the
hand-counted scenario."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest
from sqlmodel import select
from streamlit.delta_generator import DeltaGenerator

from console.cli import main as cli_main
from db.models import Role, TrackingEvent
from i18n import t
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


def delta(at, label_key: str) -> str:
    return next(m.proto.delta for m in at.metric if m.label == t(label_key))


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
    assert any(t("funnel.attribution", added=2, by_state=1) == c.value for c in at.caption)
    assert any(t("funnel.add_rate_caveat") == c.value for c in at.caption)
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


def test_period_over_period_changes(world, make_user, as_user):
    """Nov 1–3 against Oct 29–31, where only u3 viewed (Oct 31) and nobody clicked."""
    as_user(make_user(Role.hq_operator))
    at = open_funnel(run_app("funnel.py"))
    assert delta(at, "funnel.kpi.order_result_users") == t("funnel.delta_users", value=3)
    assert delta(at, "funnel.kpi.entry_ctr") == t("funnel.delta_points", value=25.0)
    # Nobody viewed the guide before: no rate to compare with.
    assert delta(at, "funnel.kpi.add_click_rate") == "" and delta(at, "funnel.kpi.add_rate") == ""
    assert delta(at, "funnel.kpi.binding_rate") == ""  # as of now in both periods
    at.date_input(key="funnel_from").set_value(sc.END)
    at.run()
    # Nov 3 (u1, u5) against Nov 2 (u1, u2, u6); entry clicks 0 of 2 against 1 of 3.
    assert delta(at, "funnel.kpi.order_result_users") == t("funnel.delta_users", value=-1)
    assert delta(at, "funnel.kpi.entry_ctr") == t("funnel.delta_points", value=-100 / 3)
    # Oct 1–3: nothing before it to compare with, so no change is claimed.
    at.date_input(key="funnel_from").set_value(sc.END.replace(month=10, day=1))
    at.date_input(key="funnel_to").set_value(sc.END.replace(month=10, day=3))
    at.run()
    assert delta(at, "funnel.kpi.order_result_users") == ""


def test_exports_are_named_and_headed_by_their_filters(world, make_user, as_user, monkeypatch):
    downloads: dict[str, bytes] = {}
    real = DeltaGenerator.download_button

    def capture(self, label, data, file_name=None, *args, **kwargs):
        downloads[file_name] = data
        return real(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", capture)
    as_user(make_user(Role.hq_operator))
    at = open_funnel(run_app("funnel.py"))
    at.selectbox(key="funnel_branch").set_value(world["north"].id)
    at.selectbox(key="funnel_platform").set_value("app")
    at.run()
    at.selectbox(key="funnel_drill").set_value(world["north"].id)
    at.run()
    name = "funnel_branches_2026-11-01_2026-11-03_branch-BJ01_all-stores_app"
    assert {f"{name}.xlsx", f"{name}.csv", f"{name.replace('branches', 'stores')}.csv",
            f"{name.replace('branches', 'daily')}.xlsx"} <= set(downloads)
    book = openpyxl.load_workbook(io.BytesIO(downloads[f"{name}.xlsx"]))
    assert book.sheetnames == [t("funnel.branches"), t("funnel.export.filters")]
    assert [r[0] for r in book.active.iter_rows(values_only=True)] == [t("funnel.col.branch_code"), "BJ01"]
    notes = dict(book[t("funnel.export.filters")].iter_rows(values_only=True))
    assert notes[t("funnel.export.branch")] == "BJ01 北京分公司"
    assert notes[t("funnel.export.platform")] == t("platform.app")
    assert notes[t("funnel.export.range")].startswith("2026-11-01 至 2026-11-03")
    lines = downloads[f"{name}.csv"].decode("utf-8-sig").splitlines()
    assert lines[1] == f"{t('funnel.export.range')},{notes[t('funnel.export.range')]}"
    assert lines[5] == "" and lines[6].startswith(t("funnel.col.branch_code"))
    store = world["stores"]["000101"]
    at.selectbox(key="funnel_store").set_value(store.id)
    at.run()
    assert "funnel_daily_2026-11-01_2026-11-03_branch-BJ01_store-000101_app.csv" in downloads


def upload_and_import(at, name: str, data: bytes):
    at.file_uploader(key="funnel_upload").upload(name, data, "text/csv")
    at.run()
    at.button(key="funnel_import").click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_hq_imports_an_event_file_with_a_progress_bar(world, make_user, as_user, session):
    recent = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    lines = ["event_id,event,occurred_at,user_key,crm_store_id,platform"]
    lines += [f"p{n},order_result_view,{recent},pu{n},000101,app" for n in range(2300)]
    lines += [f"x1,order_result_view,{recent},pu1,999999,app"]
    as_user(make_user(Role.hq_operator))
    at = upload_and_import(open_funnel(run_app("funnel.py")), "events.csv", "\n".join(lines).encode())
    assert at.progress[0].value == 100
    assert at.progress[0].text == t("funnel.import_progress", lines=2301, percent=1.0)
    assert at.success[0].value == t("funnel.import_done", lines=2301, accepted=2300, duplicates=0, rejected=1)
    problems = at.dataframe[-1].value
    assert list(problems[t("funnel.col.line")]) == [2302]
    assert len(session.exec(select(TrackingEvent.id).where(TrackingEvent.source == "import")).all()) == 2300


def test_an_agency_operator_imports_only_its_branchs_stores(world, make_user, as_user, session):
    recent = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    rows = [{"event_id": "a1", "event": "entry_click", "occurred_at": recent, "user_key": "v1",
             "crm_store_id": "000201", "platform": "h5"},
            {"event_id": "a2", "event": "entry_click", "occurred_at": recent, "user_key": "v1",
             "crm_store_id": "000101", "platform": "h5"}]
    agency = make_user(Role.hq_operator, world["south"], expires_at=datetime.now(UTC).replace(tzinfo=None)
                       + timedelta(days=30))
    as_user(agency)
    at = upload_and_import(open_funnel(run_app("funnel.py")), "export.json", json.dumps(rows).encode())
    assert at.success[0].value == t("funnel.import_done", lines=2, accepted=1, duplicates=0, rejected=1)
    problems = at.dataframe[-1].value
    assert list(problems[t("funnel.col.reason")]) == [t("events.store_out_of_scope", value="000101")]
    assert session.exec(select(TrackingEvent.event_id).where(TrackingEvent.source == "import")).all() == ["a1"]


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


def test_cli_names_a_zone_change_and_rebuild_funnel_recuts_the_days(world, capsys, monkeypatch):
    from base.config import get_settings

    monkeypatch.setenv("CONSOLE_TIMEZONE", "UTC")
    get_settings.cache_clear()
    assert cli_main(["metrics", "--from", "2026-11-01", "--to", "2026-11-03"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["overall"]["order_result_users"] == 4  # still Shanghai days
    assert "Asia/Shanghai" in captured.err and "rebuild-funnel" in captured.err
    assert cli_main(["rebuild-funnel"]) == 0
    capsys.readouterr()
    assert cli_main(["metrics", "--from", "2026-11-01", "--to", "2026-11-03"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    # UTC days: u4 (2026-11-03T16:00Z) is inside the range now, u3 (Oct 31 15:59:59Z) still outside.
    assert json.loads(captured.out)["overall"]["order_result_users"] == 5

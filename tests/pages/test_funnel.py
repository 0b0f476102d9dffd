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

STEPS = ["order_result_view", "entry_click", "guide_view", "add_click", "added"]


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
    # The total row is the chain's distinct users (4), not the rows' sum (5).
    assert list(branches[t("funnel.col.branch_code")]) == ["BJ01", "SH01", t("funnel.total")]
    assert list(branches[t("funnel.step.order_result_view")]) == [3, 2, 4]
    assert list(branches[t("funnel.col.binding_rate")]) == [33.3, 50.0, 40.0]
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
        downloads[file_name] = data() if callable(data) else data  # made when clicked
        return real(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", capture)
    as_user(make_user(Role.hq_operator))
    at = open_funnel(run_app("funnel.py"))
    at.selectbox(key="funnel_branch").set_value(world["north"].id)
    at.selectbox(key="funnel_platform").set_value("app")
    at.run()
    at.selectbox(key="funnel_drill").set_value(world["north"].id)
    at.run()
    # Named in Chinese after the page, the table and each filter that narrows ("all stores" does not).
    name = "导流效果_各分公司_2026-11-01至2026-11-03_BJ01-北京分公司_App"
    assert {f"{name}.xlsx", f"{name}.csv", f"{name.replace('各分公司', '门店明细')}.csv",
            f"{name.replace('各分公司', '每日明细')}.xlsx"} <= set(downloads)
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
    assert f"导流效果_每日明细_2026-11-01至2026-11-03_BJ01-北京分公司_000101-{store.name}_App.csv" in downloads


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


def test_range_ends_yesterday_steps_convert_and_stores_rank(world, make_user, as_user):
    from datetime import date as date_type

    from base.timeutil import display_zone
    from core.funnel import queries

    as_user(make_user(Role.hq_operator))
    at = run_app("funnel.py")
    today = datetime.now(display_zone()).date()
    assert at.date_input(key="funnel_to").value == today - timedelta(days=1)
    assert at.date_input(key="funnel_from").value == today - timedelta(days=30)
    assert isinstance(at.date_input(key="funnel_to").value, date_type)

    at = open_funnel(at)
    # Entry clicks 1 of 4 viewers, guide views 3 of 1 clicks (direct links), add clicks 2 of 3, adds 2 of 2.
    conversions = queries.Funnel(users={"order_result_view": 4, "entry_click": 1, "guide_view": 3, "add_click": 2,
                                        "added": 2}).conversions(STEPS)
    assert conversions == [None, 0.25, 3.0, 2 / 3, 1.0]
    chart = at.get("vega_lite_chart")[0].proto.SerializeToString()
    assert t("funnel.chart.label", users=2, rate="66.7%").encode() in chart

    assert "funnel_rank_min" not in [n.key for n in at.number_input]  # counted store by store only on request
    at.toggle(key="funnel_rank_show").set_value(True).run()
    at.number_input(key="funnel_rank_min").set_value(1).run()
    assert not at.exception, at.exception
    # Fewer stores than the ten asked for: all of them are in the top list, none repeated below.
    [top] = [f.value for f in at.dataframe if t("funnel.col.branch") in f.value.columns]
    rates = list(top[t("funnel.col.add_click_rate")])
    assert rates == sorted(rates, reverse=True) and len(rates) >= 1
    assert t("funnel.ranking.ranked", ranked=len(rates), minimum=1) in [c.value for c in at.caption]
    at.number_input(key="funnel_rank_min").set_value(1000).run()
    assert any(t("funnel.ranking.none", minimum=1000) == c.value for c in at.caption)


def test_the_ranking_is_counted_once_per_filter_not_on_every_rerun(world, make_user, as_user, monkeypatch):
    """Counting the ranking takes seconds at 50,000 stores: other widgets' reruns show the one counted."""
    from core.funnel import queries

    counted = []
    real = queries.store_ranking

    def counting(**kwargs):
        counted.append(kwargs["min_guide_views"])
        return real(**kwargs)

    monkeypatch.setattr(queries, "store_ranking", counting)
    as_user(make_user(Role.hq_operator))
    at = open_funnel(run_app("funnel.py"))
    at.toggle(key="funnel_rank_show").set_value(True).run()
    at.number_input(key="funnel_rank_min").set_value(1).run()
    ranked = [f.value for f in at.dataframe if t("funnel.col.branch") in f.value.columns]
    at.selectbox(key="funnel_drill").set_value(world["north"].id).run()
    assert not at.exception, at.exception
    assert counted == [20, 1]  # the default threshold, then 1; the drill-down counted nothing again
    shown = [f.value for f in at.dataframe if t("funnel.col.branch") in f.value.columns]
    assert ranked and len(shown) == len(ranked) and all(a.equals(b) for a, b in zip(shown, ranked, strict=True))
    at.selectbox(key="funnel_platform").set_value("app").run()
    assert counted == [20, 1, 1]  # another filter: counted again

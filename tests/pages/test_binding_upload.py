"""The upload page (上传绑定表) and the history page (导入记录) through AppTest."""

from datetime import datetime

from sqlmodel import select

from base.timeutil import format_display
from console.ui.text import md
from core.bindings import service as bindings
from db.models import Binding, BindingImport, ImportRun, Role, Store
from i18n import t
from tests.support.apptest import run_app
from tests.support.binding_sheets import OLE_ENCRYPTED, PNG, csv_bytes
from tests.support.factories import find_store, make_account


def metric(at, key: str) -> str:
    return next(m.value for m in at.metric if m.label == t(key))


def upload(at, data: bytes, name: str = "bindings.csv"):
    at.file_uploader[0].set_value((name, data, "text/csv"))
    at.run()
    assert not at.exception, at.exception
    return at


def test_branch_manager_uploads_previews_and_commits(org, make_user, as_user, session):
    manager = make_user(Role.branch_manager, org["north"])
    as_user(manager)
    at = run_app("binding_upload.py")
    assert not at.exception, at.exception
    assert at.title[0].value == t("binding_import.upload_title")
    assert at.info[0].value == t("binding_import.branch_fixed", branch="BJ01 北京分公司")
    assert not [s for s in at.selectbox if s.key == "bi_branch"]  # fixed to the own branch
    upload(at, csv_bytes([["BJ01", "000101", "北京朝阳大悦城店", "zhang.san", "张三"],
                          ["BJ01", "101", "北京东城王府井店", "li.si", "李四"]]))
    assert metric(at, "binding_import.count.new") == "2"
    assert metric(at, "binding_import.count.error") == "0"
    at.button(key="bi_commit").click()
    at.run()
    assert not at.exception, at.exception
    assert at.success[0].value == t("binding_import.committed", new=2, changed=0, unchanged=0, accounts=2)
    store = session.exec(select(Store).where(Store.crm_store_id == "000101")).one()
    binding = bindings.current_for_store(session=session, store_id=store.id)
    assert binding is not None and binding.shown is False and binding.reviewed_at is None

    history = run_app("import_history.py")
    assert not history.exception, history.exception
    frame = history.dataframe[0].value
    assert list(frame[t("binding_import.history.col.file")]) == ["bindings.csv"]
    rows = history.dataframe[1].value
    assert set(rows["CRM门店ID"]) == {"000101", "101"}


def test_errors_block_the_commit_and_offer_a_report(org, make_user, as_user, session):
    manager = make_user(Role.branch_manager, org["north"])
    as_user(manager)
    at = run_app("binding_upload.py")
    upload(at, csv_bytes([["BJ01", "000101", "", "ok.user", "甲"], ["SH01", "000201", "", "x", "乙"],
                          ["BJ01", "000103", "", "y", "丙"]]))
    assert metric(at, "binding_import.count.error") == "2"
    assert at.error[0].value == t("binding_import.errors_block", count=2)
    assert not [b for b in at.button if b.key == "bi_commit"]
    table = at.dataframe[0].value  # errors first
    assert list(table[t("binding_import.col.row")]) == [3, 4]
    assert "SH01" in table[t("binding_import.col.reason")].iloc[0]
    assert session.exec(select(Binding)).all() == []


def test_warnings_need_the_confirm_tick(org, make_user, as_user, session):
    manager = make_user(Role.branch_manager, org["north"])
    as_user(manager)
    at = run_app("binding_upload.py")
    upload(at, csv_bytes([["BJ01", "000101", "另一个名字", "ok.user", "甲"]]))
    assert metric(at, "binding_import.count.warning") == "1"
    assert at.button(key="bi_commit").disabled
    at.checkbox[0].check()
    at.run()
    at.button(key="bi_commit").click()
    at.run()
    assert not at.exception, at.exception
    assert len(session.exec(select(BindingImport)).all()) == 1


def test_a_tick_never_carries_over_to_another_file(org, make_user, as_user, session):
    as_user(make_user(Role.branch_manager, org["north"]))
    at = run_app("binding_upload.py")
    upload(at, csv_bytes([["BJ01", "000101", "另一个名字", "ok.user", "甲"]]), "first.csv")
    at.checkbox[0].check()
    at.run()
    assert not at.button(key="bi_commit").disabled
    upload(at, csv_bytes([["BJ01", "000102", "又一个名字", "other.user", "乙"]]), "second.csv")
    assert at.checkbox[0].value is False
    assert at.button(key="bi_commit").disabled
    assert session.exec(select(BindingImport)).all() == []


def test_a_file_that_is_not_a_sheet_gets_words(org, make_user, as_user):
    as_user(make_user(Role.branch_manager, org["north"]))
    at = run_app("binding_upload.py")
    upload(at, b"", "empty.csv")
    assert at.error[0].value == t("sheet.empty_file")


def test_other_file_types_get_chinese_words_not_the_uploaders(org, make_user, as_user):
    as_user(make_user(Role.branch_manager, org["north"]))
    at = run_app("binding_upload.py")
    upload(at, PNG, "photo.png")
    assert at.error[0].value == md("sheet.unsupported_type", filename="photo.png")
    upload(at, OLE_ENCRYPTED, "old.xls")
    assert at.error[0].value == t("sheet.encrypted_or_xls")


def test_error_report_is_offered_and_same_file_twice_is_a_notice(org, make_user, as_user, session):
    as_user(make_user(Role.branch_manager, org["north"]))
    at = run_app("binding_upload.py")
    upload(at, csv_bytes([["BJ01", "000101", "", "ok.user", "甲"], ["BJ01", "000103", "", "y", "丙"]]), "bad.csv")
    assert [b.label for b in at.get("download_button")][-1] == t("binding_import.error_report")
    good = csv_bytes([["BJ01", "000101", "", "ok.user", "甲"]])
    upload(at, good, "good.csv")
    at.button(key="bi_commit").click()
    at.run()
    batch = session.exec(select(BindingImport)).one()
    upload(at, good, "good.csv")
    assert at.info[-1].value == md("binding_import.already_imported", at=format_display(batch.committed_at),
                                  user=batch.uploaded_by_name, id=batch.id)
    assert not [b for b in at.button if b.key == "bi_commit"]


def test_hq_operator_chooses_the_branch(org, make_user, as_user, session):
    as_user(make_user(Role.hq_operator))
    at = run_app("binding_upload.py")
    assert not at.file_uploader  # no branch chosen yet
    at.selectbox(key="bi_branch").set_value(org["south"].id)
    at.run()
    upload(at, csv_bytes([["SH01", "000201", "", "sh.user", "上海"]]))
    assert metric(at, "binding_import.count.new") == "1"
    at.button(key="bi_commit").click()
    at.run()
    assert session.exec(select(BindingImport)).one().branch_id == org["south"].id


def test_change_after_preview_asks_to_preview_again(org, make_user, as_user, session):
    manager = make_user(Role.branch_manager, org["north"])
    operator = make_user(Role.hq_operator)
    as_user(manager)
    at = run_app("binding_upload.py")
    upload(at, csv_bytes([["BJ01", "000101", "", "mine", "甲"]]))
    # Someone binds the same store while the manager looks at the preview.
    bindings.start_binding(session=session, actor=operator.actor, store=find_store(session, "000101"),
                           account=make_account(session, "theirs", name="乙"))
    session.commit()
    at.button(key="bi_commit").click()
    at.run()
    assert at.error[0].value == t("binding_import.changed_since_preview")
    assert session.exec(select(BindingImport)).all() == []
    at.button(key="bi_again").click()
    at.run()
    assert metric(at, "binding_import.count.changed") == "1"


def test_the_page_says_when_the_import_run_finished_and_when_one_is_importing(org, make_user, as_user, session):
    """On SQLite a sheet is written as an import run: the page names when it
    finished; while any import is being applied it says 导入中 up front."""
    manager = make_user(Role.branch_manager, org["north"])
    as_user(manager)
    at = run_app("binding_upload.py")
    upload(at, csv_bytes([["BJ01", "000101", "北京朝阳大悦城店", "zhang.san", "张三"]]))
    at.button(key="bi_commit").click()
    at.run()
    assert not at.exception, at.exception
    run = session.exec(select(ImportRun)).one()
    assert run.kind == "bindings" and run.state == "done"
    batch = session.exec(select(BindingImport)).one()
    assert t("binding_import.run_finished", steps=run.steps_total, at=format_display(run.finished_at),
             id=batch.id) in [c.value for c in at.caption]
    assert not at.warning

    started = datetime(2026, 12, 3, 2, 0)
    session.add(ImportRun(kind="bindings", state="applying", actor_name="hq", actor_role="hq_admin",
                          filename="全国.xlsx", steps_total=300, steps_done=120, started_at=started,
                          heartbeat_at=started))
    session.commit()
    again = run_app("binding_upload.py")
    assert not again.exception, again.exception
    assert again.warning[0].value == t("import_runs.running", user="hq", since=format_display(started),
                                       file="全国.xlsx", done=120, total=300)

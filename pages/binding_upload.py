import hashlib

import pandas as pd
import streamlit as st

from base.errors import ConcurrentEdit, DomainError
from base.timeutil import format_display
from console.ui.actions import showing_errors
from console.ui.context import db, page_actor
from console.ui.text import md, md_error
from console.ui.widgets import page_window, pager
from core.auth.permissions import Capability
from core.bindings.imports import commit, judge, read, template
from core.bindings.imports.flow import NextStep, next_step
from core.directory import stores as store_service
from core.directory.known_members import CheckState
from core.exports import file_name
from core.import_runs import runs as import_runs
from i18n import error_text, t

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
STATUSES = ["new", "changed", "unchanged", "error"]


def _run_note(result: commit.CommitResult) -> str:
    """When the import run finished, or that another process is finishing it (SQLite)."""
    run = result.run
    if run is None:
        return ""
    if run.state == "done" and run.finished_at is not None:
        return t("binding_import.run_finished", steps=run.steps_total, at=format_display(run.finished_at),
                 id=result.import_id)
    return t("binding_import.run_continues", done=run.steps_done, total=run.steps_total)


actor = page_actor(Capability.upload_bindings)
st.title(t("binding_import.upload_title"))
st.caption(t("binding_import.intro"))

flash = st.session_state.pop("bi_flash", None)
if flash:
    st.success(flash)
run_note = st.session_state.pop("bi_run_note", None)
if run_note:
    st.caption(run_note)

with db() as session:
    running = import_runs.latest_run(session=session, actor=actor)
if running is not None and running.active:
    # A sheet committed now would be refused: say so before the operator prepares one.
    st.warning(t("import_runs.running", user=running.actor_name, since=format_display(running.started_at),
                 file=running.filename, done=running.steps_done, total=running.steps_total))

with db() as session:
    branches = store_service.visible_branches(session=session, actor=actor)
if actor.branch_scope is not None:
    own = next(b for b in branches if b.id == actor.branch_scope)
    branch_id = own.id
    st.info(md("binding_import.branch_fixed", branch=f"{own.code} {own.name}"))
    template_codes = [own.code]
else:
    options = {b.id: f"{b.code} {b.name}" for b in branches}
    branch_id = st.selectbox(t("binding_import.branch"), list(options), format_func=options.get, index=None,
                             placeholder=t("binding_import.branch_all_hint"), key="bi_branch")
    template_codes = [b.code for b in branches if branch_id in (None, b.id)]


def template_xlsx() -> bytes:
    return template.template_xlsx(
        branch_codes=template_codes, sheet_title=t("binding_import.template.sheet"),
        help_title=t("binding_import.template.help_sheet"), codes_title=t("binding_import.template.codes_sheet"),
        instructions=t("binding_import.template.help").split("\n"),
        example_caption=t("binding_import.template.example"),
        example=[[template_codes[0] if template_codes else "BJ01", "000123", "北京朝阳大悦城店", "zhangsan01",
                  "朝阳大悦城客服张三"]],
        validation_messages={"title": t("binding_import.template.validation_title"),
                             "branch_code": t("binding_import.template.validation_branch"),
                             "crm_store_id": t("binding_import.template.validation_store"),
                             "wecom_userid": t("binding_import.template.validation_userid"),
                             "wecom_name": t("binding_import.template.validation_name")})


left, right = st.columns(2)
left.download_button(t("binding_import.template_xlsx"), template_xlsx(),
                     file_name=f"{t('binding_import.template.file')}.xlsx",
                     mime=XLSX_MIME, key="bi_template_xlsx", on_click="ignore")
right.download_button(t("binding_import.template_csv"), template.template_csv(),
                      file_name=f"{t('binding_import.template.file')}.csv",
                      mime="text/csv", key="bi_template_csv", on_click="ignore")

if branch_id is None:
    st.info(t("binding_import.branch_all_hint"))
    st.stop()

nonce = st.session_state.setdefault("bi_nonce", 0)
# Any file is accepted here: core tells an .xls, an image or a renamed file apart, in words.
upload = st.file_uploader(t("binding_import.file"), key=f"bi_file_{nonce}")
if upload is None:
    st.stop()

data = upload.getvalue()
cache_key = (hashlib.sha256(data).hexdigest(), upload.name, branch_id)
cached = st.session_state.get("bi_preview")
if cached is None or cached[0] != cache_key:
    st.session_state.pop("bi_preview", None)
    with showing_errors(stop=True):
        parsed = read.parse_sheet(data, upload.name)
        with db() as session:
            preview = judge.preview(session=session, actor=actor, parsed=parsed, branch_id=branch_id)
    cached = (cache_key, preview)
    st.session_state["bi_preview"] = cached
    st.session_state.pop("bi_stale", None)
_, preview = cached
parsed = preview.parsed

detail = "".join([
    t("binding_import.file_sheet", sheet=parsed.sheet_name) if parsed.sheet_name else "",
    t("binding_import.file_encoding", encoding=parsed.encoding) if parsed.encoding else "",
    t("binding_import.file_header_row", row=parsed.header_row) if parsed.header_row != 1 else ""])
st.caption(md("binding_import.file_kind", filename=parsed.filename, rows=len(parsed.rows), kind=parsed.file_kind,
             detail=detail))
if preview.already_imported is not None:
    earlier = preview.already_imported
    st.info(md("binding_import.already_imported" if preview.repeats_earlier_import
              else "binding_import.already_imported_again",
              at=format_display(earlier.committed_at), user=earlier.uploaded_by, id=earlier.import_id))

counts = st.columns(5)
counts[0].metric(t("binding_import.count.new"), preview.new_count)
counts[1].metric(t("binding_import.count.changed"), preview.changed_count)
counts[2].metric(t("binding_import.count.unchanged"), preview.unchanged_count)
counts[3].metric(t("binding_import.count.warning"), preview.warning_count)
counts[4].metric(t("binding_import.count.error"), preview.error_count)
if preview.accounts_to_create:
    st.caption(t("binding_import.accounts_to_create", count=preview.accounts_to_create))
check = preview.member_check
if check.state == CheckState.not_configured:
    st.caption(t("binding_import.members_not_configured"))
elif check.state == CheckState.unreachable:
    st.warning(md("binding_import.members_unreachable",
                 reason=error_text(DomainError(check.reason_key or "wecom.reason.network", **check.reason_params))))
    if st.button(t("binding_import.members_check_again"), key="bi_check_again"):
        st.session_state.pop("bi_preview", None)
        st.rerun()
else:
    st.caption(t("binding_import.members_checked"))


filters = {"all": t("binding_import.filter.all"), **{s: t(f"binding_import.status.{s}") for s in STATUSES},
           "warning": t("binding_import.filter.warning")}
default_filter = "error" if preview.error_count else "all"
chosen = st.selectbox(t("binding_import.filter"), list(filters), format_func=filters.get,
                      index=list(filters).index(default_filter), key="bi_filter")
shown = [r for r in preview.rows
         if chosen == "all" or (r.warnings if chosen == "warning" else r.status == chosen)]
offset, limit = page_window("bi_rows")
labels = {c.key: c.label for c in read.BINDING_COLUMNS}
st.dataframe(pd.DataFrame([{
    t("binding_import.col.row"): r.row_number, t("binding_import.col.status"): t(f"binding_import.status.{r.status}"),
    **{labels[k]: r.values.get(k, "") for k in labels},
    t("binding_import.col.previous"): r.previous_userid or "", t("binding_import.col.reason"): template.row_reasons(r),
} for r in shown[offset:offset + limit]]), hide_index=True, width="stretch")
pager(len(shown), "bi_rows")

if preview.error_count or preview.warning_count:
    report_key = ("bi_report", cache_key)
    if st.session_state.get("bi_report_key") != report_key:
        st.session_state["bi_report"] = template.error_report_xlsx(preview)
        st.session_state["bi_report_key"] = report_key
    report_name = file_name(parsed.filename.rsplit(".", 1)[0], t("binding_import.report_file"))
    st.download_button(t("binding_import.error_report"), st.session_state["bi_report"],
                       file_name=f"{report_name}.xlsx", mime=XLSX_MIME,
                       key="bi_report_dl", on_click="ignore")

step = next_step(preview)
if step is NextStep.fix_errors:
    st.error(t("binding_import.errors_block", count=preview.error_count))
    st.stop()
if step is NextStep.already_imported:
    # The notice above says when and by whom.
    st.stop()
if step is NextStep.nothing_to_change:
    st.info(t("binding_import.nothing_to_commit"))
    st.stop()

stale = st.session_state.get("bi_stale")
if stale:
    # Something the preview rests on changed; its figures are no longer true.
    st.error(stale)
    if st.button(t("binding_import.preview_again"), type="primary", key="bi_again"):
        st.session_state.pop("bi_preview", None)
        st.session_state.pop("bi_stale", None)
        st.rerun()
    st.stop()

confirmed = True
if step is NextStep.confirm_warnings:
    # Keyed by the file: a tick given for one file never carries over to the next.
    confirmed = st.checkbox(t("binding_import.confirm_warning_box", count=preview.warning_count),
                            key=f"bi_confirm_{nonce}_{cache_key[0][:16]}_{branch_id}")
go_unchecked = False
if preview.members_unchecked:
    go_unchecked = st.checkbox(t("binding_import.confirm_unchecked_box"),
                               key=f"bi_unchecked_{nonce}_{cache_key[0][:16]}_{branch_id}")
    confirmed = confirmed and go_unchecked
if st.button(t("binding_import.commit"), type="primary", disabled=not confirmed, key="bi_commit"):
    with showing_errors():
        try:
            with db() as session:
                result = commit.commit(session=session, actor=actor, preview=preview, confirm_warnings=confirmed,
                                       confirm_unchecked=go_unchecked)
        except ConcurrentEdit as exc:
            st.session_state["bi_stale"] = md_error(exc)
            st.rerun()
        st.session_state["bi_flash"] = t("binding_import.committed", new=result.new_count,
                                         changed=result.changed_count, unchanged=result.unchanged_count,
                                         accounts=result.accounts_created)
        st.session_state["bi_run_note"] = _run_note(result)
        st.session_state.pop("bi_preview", None)
        st.session_state["bi_nonce"] = nonce + 1
        st.rerun()

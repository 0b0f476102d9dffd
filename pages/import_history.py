import pandas as pd
import streamlit as st

from base.errors import DomainError
from base.timeutil import format_display
from console.ui.actions import showing_errors
from console.ui.context import db, page_actor
from console.ui.widgets import download_buttons, page_window, pager
from core.auth.permissions import Capability
from core.bindings.imports import history, read
from core.import_runs import runs as import_runs
from i18n import error_text, t

actor = page_actor(Capability.upload_bindings)
st.title(t("binding_import.history_title"))

with db() as session:
    running = import_runs.latest_run(session=session, actor=actor)
if running is not None and running.active:
    st.warning(t("import_runs.running", user=running.actor_name, since=format_display(running.started_at),
                 file=running.filename, done=running.steps_done, total=running.steps_total))

offset, limit = page_window("imports", 25)
with db() as session:
    batches, total = history.list_imports(session=session, actor=actor, offset=offset, limit=limit)
if not total:
    st.info(t("binding_import.history.none"))
    st.stop()

st.dataframe(pd.DataFrame([{
    t("binding_import.history.col.id"): b.import_id,
    t("binding_import.history.col.at"): format_display(b.committed_at),
    t("binding_import.history.col.user"): b.uploaded_by,
    t("binding_import.history.col.branch"): f"{b.branch_code} {b.branch_name}" if b.branch_code
    else t("binding_import.history.multi_branch"),
    t("binding_import.history.col.file"): b.filename,
    t("binding_import.history.col.rows"): b.total_rows,
    t("binding_import.count.new"): b.new_count,
    t("binding_import.count.changed"): b.changed_count,
    t("binding_import.count.unchanged"): b.unchanged_count,
    t("binding_import.count.warning"): b.warning_count,
    t("binding_import.history.col.accounts"): b.accounts_created,
} for b in batches]), hide_index=True, width="stretch")
pager(total, "imports", 25)

labels = {b.import_id: t("binding_import.history.batch_label", id=b.import_id, at=format_display(b.committed_at),
                         user=b.uploaded_by, file=b.filename) for b in batches}
import_id = st.selectbox(t("binding_import.history.pick"), list(labels), format_func=labels.get, key="imports_pick")
st.subheader(t("binding_import.history.rows_title", id=import_id))
outcomes = {None: t("binding_import.filter.all"),
            **{s: t(f"binding_import.status.{s}") for s in ("new", "changed", "unchanged")}}
outcome = st.selectbox(t("binding_import.filter"), list(outcomes), format_func=outcomes.get, key="imports_outcome")


def rows_frame(rows: list[history.ImportedRow]) -> pd.DataFrame:
    return pd.DataFrame([{
        t("binding_import.col.row"): r.row_number,
        t("binding_import.col.status"): t(f"binding_import.status.{r.outcome}"),
        read.LABELS["crm_store_id"]: r.crm_store_id, read.LABELS["store_name"]: r.store_name,
        read.LABELS["wecom_userid"]: r.wecom_userid, read.LABELS["wecom_name"]: r.wecom_name,
        t("binding_import.col.previous"): r.previous_userid or "",
        t("binding_import.col.reason"): "；".join(error_text(DomainError(w.key, **w.params)) for w in r.warnings),
    } for r in rows])


row_offset, row_limit = page_window("import_rows")
with showing_errors(stop=True), db() as session:
    rows, row_total = history.import_rows(session=session, actor=actor, import_id=import_id, outcome=outcome,
                                          offset=row_offset, limit=row_limit)
st.dataframe(rows_frame(rows), hide_index=True, width="stretch")
pager(row_total, "import_rows")
if st.toggle(t("common.download_xlsx") + " / CSV", key="import_rows_export"):
    with db() as session:
        all_rows, _ = history.import_rows(session=session, actor=actor, import_id=import_id, outcome=outcome,
                                          limit=row_total)
    download_buttons(rows_frame(all_rows), t("binding_import.history_title"), [
        (t("binding_import.history.pick"), labels[import_id]), (t("binding_import.filter"), outcomes[outcome])],
        "import_rows_dl")

"""POST /api/v1/events and POST /wecom/callback answer within a second while a
20,000-row binding sheet commits on SQLite: the commit is an import run applied
in chunks that hold the write lock about 0.2 s each and pause between them."""

import pytest
from sqlmodel import Session, select

from core.bindings.imports import commit, judge, read
from core.directory import stores
from db.models import BindingImport, ImportRun
from tests.support.binding_sheets import csv_bytes
from tests.web.test_answers_during_an_import import ACTOR, STORES, answer_times_during_the_import, client, imported

pytestmark = pytest.mark.usefixtures("settled_heap")  # they time answers

__all__ = ["client", "imported"]  # the fixtures, shared with the store import's test


def test_intake_and_the_callback_answer_within_a_second_while_a_binding_sheet_commits(
        client, session, imported, api_key, monkeypatch):
    parsed = read.parse_sheet(csv_bytes([[f"B{i % 50:02d}", f"{i:07d}", f"门店{i}", f"kf.{i}", f"客服{i}"]
                                         for i in range(STORES)]), "bindings.csv")
    preview = judge.preview(session=session, actor=ACTOR, parsed=parsed, branch_id=None)
    assert preview.ok and preview.new_count == STORES
    session.rollback()
    results: list = []

    def commit_the_sheet(other: Session) -> stores.StoreImportResult:
        results.append(commit.commit(session=other, actor=ACTOR, preview=preview, confirm_unchecked=True))
        # The shared helper checks a store import's figures: report the sheet's in those words.
        return stores.StoreImportResult(updated=STORES)

    monkeypatch.setattr(stores, "import_stores", lambda session, **_kw: commit_the_sheet(session))
    times = answer_times_during_the_import(client, session, api_key)
    assert max(times["intake"]) < 1.0 and max(times["callback"]) < 1.0, times
    assert results[0].run.state == "done"
    batch = session.exec(select(BindingImport)).one()
    assert batch.new_count == STORES
    assert [r.kind for r in session.exec(select(ImportRun).order_by(ImportRun.id)).all()][-1] == "bindings"

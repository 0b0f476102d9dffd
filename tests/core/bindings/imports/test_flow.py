"""What follows a preview, as the upload page and the CLI both decide it."""

import pytest
from sqlmodel import select

from core.bindings import service as bindings
from core.bindings.imports import commit, judge, read
from core.bindings.imports.flow import NextStep, next_step
from db.models import Role, Store
from tests.support.binding_sheets import csv_bytes

GOOD = ["BJ01", "000101", "北京朝阳大悦城店", "zhang.san", "张三"]
OTHER_STORE = ["BJ01", "000102", "北京海淀银泰店", "li.si", "李四"]
NAME_DIFFERS = ["BJ01", "000102", "海淀店", "li.si", "李四"]  # a warning: the name on file is another
CLOSED_STORE = ["BJ01", "000103", "", "wang.wu", "王五"]  # an error: the store is closed


@pytest.fixture
def manager(org, make_user):
    return make_user(Role.branch_manager, org["north"])


def preview_of(session, actor, rows: list[list[str]]) -> judge.Preview:
    parsed = read.parse_sheet(csv_bytes(rows), "bindings.csv")
    return judge.preview(session=session, actor=actor, parsed=parsed)


def committed(session, actor, preview: judge.Preview) -> None:
    commit.commit(session=session, actor=actor, preview=preview, confirm_warnings=True)
    session.commit()


def test_a_clean_sheet_goes_straight_to_the_commit(session, manager):
    assert next_step(preview_of(session, manager.actor, [GOOD, OTHER_STORE])) is NextStep.commit


def test_warnings_wait_for_the_tick(session, manager):
    assert next_step(preview_of(session, manager.actor, [GOOD, NAME_DIFFERS])) is NextStep.confirm_warnings


def test_errors_come_before_warnings_and_everything_else(session, manager):
    preview = preview_of(session, manager.actor, [GOOD, NAME_DIFFERS, CLOSED_STORE])
    assert preview.warning_count == 1
    assert next_step(preview) is NextStep.fix_errors


def test_the_same_file_again_is_already_imported(session, manager):
    committed(session, manager.actor, preview_of(session, manager.actor, [GOOD]))
    assert next_step(preview_of(session, manager.actor, [GOOD])) is NextStep.already_imported


def test_another_file_with_the_bindings_as_they_are_has_nothing_to_change(session, manager):
    committed(session, manager.actor, preview_of(session, manager.actor, [GOOD]))
    # The same rows without the store name: another file, so no earlier import of it.
    again = preview_of(session, manager.actor, [["BJ01", "000101", "", "zhang.san", "张三"]])
    assert again.already_imported is None
    assert next_step(again) is NextStep.nothing_to_change


def test_the_same_file_after_the_bindings_moved_is_committed_again(session, manager, make_user):
    committed(session, manager.actor, preview_of(session, manager.actor, [GOOD]))
    store = session.exec(select(Store).where(Store.crm_store_id == "000101")).one()
    bindings.end_binding(session=session, actor=make_user(Role.hq_operator).actor,
                         binding=bindings.current_for_store(session=session, store_id=store.id),
                         reason=bindings.BindingEndReason.unbound)
    session.commit()
    again = preview_of(session, manager.actor, [GOOD])
    assert again.already_imported is not None
    assert next_step(again) is NextStep.commit

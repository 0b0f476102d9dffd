"""Known accounts only (issue 11 item 5), as an operator meets it: the binding sheet's
preview names accounts WeCom does not know, says when nothing was checked, asks for a
tick when WeCom does not answer; the bulk show dialog names them before it asks."""

import pytest
from sqlmodel import select

from core.directory import known_members
from db.models import Binding, BindingImport, Role
from i18n import t
from tests.support.apptest import run_app
from tests.support.binding_sheets import csv_bytes
from tests.support.factories import bind
from tests.support.wecom_members import configure_wecom, members_simulator, silent_server

TABLE = "review_table"


@pytest.fixture
def sim(monkeypatch):
    sim = members_simulator()
    configure_wecom(monkeypatch, sim.base_url)
    yield sim
    sim.stop()


def upload(at, data: bytes, name: str = "bindings.csv"):
    at.file_uploader[0].set_value((name, data, "text/csv"))
    at.run()
    assert not at.exception, at.exception
    return at


def reasons(at) -> list[str]:
    return list(at.dataframe[0].value[t("binding_import.col.reason")])


def test_preview_names_unknown_and_no_customer_contact_accounts(sim, org, make_user, as_user, session):
    as_user(make_user(Role.branch_manager, org["north"]))
    at = run_app("binding_upload.py")
    upload(at, csv_bytes([["BJ01", "000101", "", "known.one", "甲"], ["BJ01", "000102", "", "nobody.here", "乙"],
                          ["BJ01", "101", "", "no.contact", "丙"]]))
    assert at.error[0].value == t("binding_import.errors_block", count=2)
    assert reasons(at) == [
        t("binding_import.row.wecom_unknown", column="企微账号", userid="nobody.here"),
        t("binding_import.row.wecom_no_customer_contact", column="企微账号", userid="no.contact")]
    assert t("binding_import.members_checked") in [c.value for c in at.caption]
    assert not [b for b in at.button if b.key == "bi_commit"]
    assert session.exec(select(Binding)).all() == []


def test_without_wecom_the_preview_says_nothing_was_checked(org, make_user, as_user, monkeypatch, session):
    monkeypatch.delenv("WECOM_CORP_ID", raising=False)
    as_user(make_user(Role.branch_manager, org["north"]))
    at = run_app("binding_upload.py")
    upload(at, csv_bytes([["BJ01", "000101", "", "whoever.it.is", "甲"]]))
    assert t("binding_import.members_not_configured") in [c.value for c in at.caption]
    at.button(key="bi_commit").click().run()
    assert not at.exception
    assert len(session.exec(select(BindingImport)).all()) == 1


def test_wecom_not_answering_is_a_warning_to_tick_before_commit(org, make_user, as_user, monkeypatch, session):
    monkeypatch.setattr(known_members, "TIMEOUT_SECONDS", 0.5)
    as_user(make_user(Role.branch_manager, org["north"]))
    with silent_server() as url:
        configure_wecom(monkeypatch, url)
        at = run_app("binding_upload.py")
        upload(at, csv_bytes([["BJ01", "000101", "", "known.one", "甲"]]))
    assert at.warning[0].value.startswith(t("binding_import.members_unreachable", reason="")[:12])
    assert at.button(key="bi_commit").disabled
    box = next(c for c in at.checkbox if c.label == t("binding_import.confirm_unchecked_box"))
    box.check().run()
    at.button(key="bi_commit").click().run()
    assert not at.exception
    assert len(session.exec(select(BindingImport)).all()) == 1


def select_rows(at, rows):
    at.session_state[f"{TABLE}_{at.session_state[TABLE + '_generation']}"] = {
        "selection": {"rows": rows, "columns": [], "cells": []}}
    at.run()


def test_show_dialog_names_an_account_wecom_does_not_know_before_asking(sim, org, make_user, as_user, session):
    as_user(make_user(Role.hq_operator))
    fine = bind(session, "000101", "known.one")
    stranger = bind(session, "000102", "nobody.here")
    at = run_app("bindings.py")
    select_rows(at, [0, 1])
    at.button(key="review_bulk_show").click().run()
    assert not at.exception
    assert t("bindings.confirm_refused", count=1) in [w.value for w in at.warning]
    problems = at.dataframe[-1].value
    assert list(problems[t("bindings.col.crm_store_id")]) == ["000102"]
    assert list(problems[t("bindings.col.problem")]) == [t("bindings.problem.wecom_unknown")]
    assert t("bindings.confirm_show", selected=2, changing=1) in [m.value for m in at.markdown]
    at.button(key="review_confirm").click().run()
    assert not at.exception
    session.expire_all()
    assert session.get(Binding, fine.id).shown and not session.get(Binding, stranger.id).shown

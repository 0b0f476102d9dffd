"""Streamlit writes its own English into widgets a page leaves without text: "Choose an
option" in an empty select, "Select all" in a multiselect (on 告警 it acknowledged every
alert at once), "empty" across an empty table, "None" in a cell without a value. Every
page of every role, on an empty chain and on the seeded demo, leaves none of them."""

import math

import pandas as pd
import pytest
from sqlmodel import select
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from console.navigation import PAGES
from core.auth import sessions
from db.models import Role, User
from demo import seed as demo
from tests.support.apptest import APP


def shown_values(frame) -> pd.DataFrame:
    """The cells as the table draws them: a pandas Styler's texts where the page formats them."""
    styler = frame.proto.arrow_data.styler
    if styler.display_values:
        return convert_arrow_bytes_to_pandas_df(styler.display_values)
    return frame.value


def english_defaults(at: AppTest) -> list[str]:
    found = []
    for box in at.selectbox:
        if (not box.proto.HasField("default") or not box.options) and not box.proto.placeholder:
            found.append(f"selectbox {box.label!r} without a placeholder")
    for box in at.multiselect:
        if not box.proto.placeholder:
            found.append(f"multiselect {box.label!r} without a placeholder")
        if box.proto.select_all:
            found.append(f"multiselect {box.label!r} offers Select all")
    for frame in at.dataframe:
        if frame.value.empty:
            found.append(f"empty table with columns {list(frame.value.columns)[:3]}")
        shown = shown_values(frame)
        for column in shown.columns:
            for cell in shown[column]:
                if cell is None or (isinstance(cell, float) and math.isnan(cell)):
                    found.append(f"a cell without a value in column {column!r}")
                    break
    return found


def report(problems: dict[str, list[str]]) -> str:
    return "\n".join(f"{page}: {found}" for page, found in problems.items())


def walk(user_role_pages) -> dict[str, list[str]]:
    problems = {}
    for who, spec in user_role_pages:
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        at.switch_page(spec.path)
        at.run()
        assert not at.exception, (who, spec.url_path, at.exception)
        found = english_defaults(at)
        if found:
            problems[f"{who} {spec.url_path}"] = found
    return problems


@pytest.mark.parametrize("role", [Role.hq_admin, Role.branch_manager])
def test_pages_of_an_empty_chain_leave_no_english_default(role, org, make_user, as_user):
    user = make_user(role, org["north"] if role == Role.branch_manager else None)
    as_user(user)
    problems = walk((role.value, spec) for spec in PAGES if user.actor.can(spec.capability))
    assert not problems, report(problems)


def test_demo_pages_leave_no_english_default(session, monkeypatch):
    import streamlit as st

    created = demo.seed_demo(session=session)
    session.commit()
    problems = {}
    for demo_user in created:
        if demo_user.username not in ("admin", "sh_manager"):
            continue
        result = sessions.log_in(session=session, username=demo_user.username, password=demo_user.password)
        session.commit()
        st.cache_resource.clear()
        monkeypatch.setattr("console.ui.context.read_session_token", lambda token=result.token: token)
        actor = sessions.actor_for(session.exec(select(User).where(User.username == demo_user.username)).one())
        problems.update(walk((demo_user.username, spec) for spec in PAGES if actor.can(spec.capability)))
    assert not problems, report(problems)

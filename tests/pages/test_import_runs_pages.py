"""The stores page and the import history say when an import run is 导入中,
and the stores page names the last store import once it finished."""

from datetime import datetime

from base.timeutil import format_display
from db.models import ImportRun, Role
from i18n import t
from tests.support.apptest import run_app

STARTED = datetime(2026, 12, 3, 2, 0)


def a_run(session, state: str, finished: datetime | None = None) -> ImportRun:
    run = ImportRun(kind="stores", state=state, actor_name="crm", actor_role="hq_admin", filename="crm.csv",
                    steps_total=120, steps_done=45, started_at=STARTED, heartbeat_at=STARTED, finished_at=finished)
    session.add(run)
    session.commit()
    return run


def test_a_store_import_being_applied_shows_as_importing(org, make_user, as_user, session):
    a_run(session, "applying")
    as_user(make_user(Role.hq_admin))
    stores_page = run_app("stores.py")
    assert not stores_page.exception, stores_page.exception
    assert t("stores.import_running", user="crm", since=format_display(STARTED), file="crm.csv", done=45,
             total=120) in [w.value for w in stores_page.warning]
    history = run_app("import_history.py")
    assert not history.exception, history.exception
    assert history.warning[0].value == t("import_runs.running", user="crm", since=format_display(STARTED),
                                         file="crm.csv", done=45, total=120)


def test_the_stores_page_names_the_last_finished_import(org, make_user, as_user, session):
    a_run(session, "done", finished=datetime(2026, 12, 3, 2, 5))
    as_user(make_user(Role.hq_admin))
    at = run_app("stores.py")
    assert not at.exception, at.exception
    assert not at.warning
    assert t("stores.import_last", file="crm.csv", user="crm", at=format_display(datetime(2026, 12, 3, 2, 5))) \
        in [c.value for c in at.caption]

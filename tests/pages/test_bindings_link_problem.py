"""AppTest of 绑定审核: WeCom's last refusal of the store's 获客链接 is shown in words
with the code, like the code's own refusal, and gone once WeCom took a call."""

from sqlmodel import select

from base.problems import problem
from db.models import ContactCode, Role
from i18n import t
from tests.pages.test_bindings import TABLE, select_rows
from tests.support.apptest import run_app
from tests.support.factories import bind, find_store


def test_the_row_shows_why_wecom_refused_the_stores_link(session, org, make_user, as_user):
    as_user(make_user(Role.hq_operator))
    bind(session, "000101", "acc1", shown=True)
    code = session.exec(select(ContactCode).where(ContactCode.store_id == find_store(session, "000101").id)).one()
    code.link_problem = problem("wecom.reason.no_customer_contact_permission", errcode=84074, errmsg="no permission")
    session.add(code)
    session.commit()
    at = run_app("bindings.py")
    select_rows(at, TABLE, [0])
    assert not at.exception, at.exception
    [warning] = [w.value for w in at.warning if "获客链接" in w.value]
    assert t("wecom.reason.no_customer_contact_permission") in warning
    assert "codes." not in warning and "wecom.reason" not in warning

    code.link_problem = None
    session.add(code)
    session.commit()
    at = run_app("bindings.py")
    select_rows(at, TABLE, [0])
    assert not [w.value for w in at.warning if "获客链接" in w.value]

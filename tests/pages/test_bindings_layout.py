"""绑定审核 at 1440 px: the columns a reviewer decides on (store, 入口开关, 审核,
客户端展示, account, its status and usage, 绑定时间) come first, at widths that fit
the table's 980 px beside the menu; who reviewed and when has a column of its own
after them, so 审核 stays short."""

import json

from db.models import Role
from i18n import t
from tests.support.apptest import run_app
from tests.support.factories import bind

REVIEW_COLUMNS = ["bindings.col.crm_store_id", "bindings.col.store_name", "bindings.col.flag", "bindings.col.review",
                  "bindings.col.entry", "bindings.col.wecom_userid", "bindings.col.account_status",
                  "bindings.col.usage", "bindings.col.started"]
# The table's width at a 1440 px window (measured in Chromium), less its row-marker column.
ROOM_PX = 980 - 35


def test_the_reviewers_columns_come_first_and_fit_at_1440_px(session, org, make_user, as_user):
    bind(session, "000101", "acc1", reviewed=True, shown=True)
    as_user(make_user(Role.hq_operator, username="op"))
    at = run_app("bindings.py")
    assert not at.exception, at.exception
    frame = at.dataframe[0].value
    assert list(frame.columns[:len(REVIEW_COLUMNS)]) == [t(c) for c in REVIEW_COLUMNS]
    assert list(frame[t("bindings.col.review")]) == [t("bindings.state.reviewed")]
    assert list(frame[t("bindings.col.reviewed")])[0].startswith("20")  # when (and by whom, when known)
    config = json.loads(at.dataframe[0].proto.columns)
    widths = [config[t(c)]["width"] for c in REVIEW_COLUMNS]
    assert all(isinstance(w, int) for w in widths) and sum(widths) <= ROOM_PX

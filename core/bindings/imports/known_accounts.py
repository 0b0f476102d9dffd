"""Known accounts only: every userid a binding sheet names, current and standby, must be
a WeCom member with customer contact (core.directory.known_members), or its row is an
error that says why."""

from collections.abc import Iterable

from core.bindings.imports.read import LABELS, RowIssue
from core.bindings.standby import parse_userids
from core.directory.accounts import is_valid_userid
from core.directory.known_members import MemberCheck

STANDBY_KEY = "standby_userids"


def standby_userids(values: dict[str, str]) -> list[str]:
    return parse_userids(values.get(STANDBY_KEY, ""))


def row_userids(values: dict[str, str]) -> list[tuple[str, str]]:
    """(column key, userid) of every well-formed account the row names (a malformed one is its own error)."""
    named = [("wecom_userid", values["wecom_userid"])] if values.get("wecom_userid") else []
    named += [(STANDBY_KEY, userid) for userid in standby_userids(values)]
    return [(key, userid) for key, userid in named if is_valid_userid(userid)]


def sheet_userids(rows: Iterable[dict[str, str]]) -> set[str]:
    return {userid for values in rows for _key, userid in row_userids(values)}


def member_issues(values: dict[str, str], check: MemberCheck) -> list[RowIssue]:
    """The row's errors for accounts WeCom cannot serve customers with (none unless checked)."""
    if not check.checked:
        return []
    issues = []
    for key, userid in row_userids(values):
        found = check.problem(userid)
        if found is not None:
            issues.append(RowIssue(f"binding_import.row.wecom_{found.value}",
                                   {"column": LABELS[key], "userid": userid}))
    return issues

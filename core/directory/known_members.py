"""Whether WeCom knows an account as a member who can take customers (issue 11, item 5).

A binding to a userid WeCom does not know, or to a member without customer contact,
would put an entry up that no customer can add. The binding sheet's preview and
showing an entry check every userid against `externalcontact/get_follow_user_list`
(members with customer contact in the app's scope); `user/get` then says why a
missing one is missing. Both answers are kept for a few minutes, so a preview, its
commit and the review that follows ask WeCom once.

Without WECOM_CORP_ID/WECOM_SECRET nothing is checked and the caller says so; when
WeCom does not answer within a few seconds the check is `unreachable` and the caller
asks the operator to go on without it.
"""

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from base.config import get_settings
from core.wecom.client import NETWORK_REASON, RetryPolicy, WeComClient, WeComError
from core.wecom.identity import ACTIVE, USERID_NOT_FOUND

CACHE_SECONDS = 300.0
# An operator waits for the preview: one try, a few seconds, then say WeCom did not answer.
TIMEOUT_SECONDS = 3.0
# `user/get` calls made to say why userids are missing; past this many the reason stays general.
DETAIL_LOOKUPS = 100


class CheckState(StrEnum):
    checked = "checked"
    not_configured = "not_configured"   # no WECOM_CORP_ID / WECOM_SECRET: nothing checked
    unreachable = "unreachable"         # WeCom did not answer (or refused the app): nothing checked


class MemberProblem(StrEnum):
    unknown = "unknown"                          # user/get: 60111
    inactive = "inactive"                        # disabled, not activated or left
    no_customer_contact = "no_customer_contact"  # a member, without customer contact (or outside the app's scope)
    not_in_follow_list = "not_in_follow_list"    # missing; why was not asked (too many, or user/get failed)


@dataclass(frozen=True)
class MemberCheck:
    state: CheckState
    # Lower-cased userid → why WeCom cannot serve customers with it; only the checked userids that fail.
    problems: dict[str, MemberProblem] = field(default_factory=dict)
    # Why the check could not run (a wecom.reason.* key and its params), for `unreachable`.
    reason_key: str | None = None
    reason_params: dict[str, str] = field(default_factory=dict)

    def problem(self, userid: str) -> MemberProblem | None:
        return self.problems.get(userid.lower())

    @property
    def checked(self) -> bool:
        return self.state == CheckState.checked


NOT_CONFIGURED = MemberCheck(CheckState.not_configured)

_lock = threading.Lock()
_follow: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}
_details: dict[tuple[str, str, str], tuple[float, MemberProblem]] = {}


def forget() -> None:
    """Drop what was learnt (tests; a changed app)."""
    with _lock:
        _follow.clear()
        _details.clear()


def configured_client() -> WeComClient | None:
    settings = get_settings()
    if not settings.WECOM_CORP_ID or not settings.WECOM_SECRET:
        return None
    return WeComClient(settings.WECOM_API_BASE, settings.WECOM_CORP_ID, settings.WECOM_SECRET,
                       timeout=TIMEOUT_SECONDS, retry=RetryPolicy(max_attempts=1))


def check_userids(userids: Iterable[str], *, client: WeComClient | None = None,
                  now: float | None = None) -> MemberCheck:
    """Which of `userids` WeCom cannot serve customers with, and why. Without a
    `client`, the configured WeCom app's (NOT_CONFIGURED when there is none)."""
    wanted = sorted({u.lower() for u in userids if u})
    own = client is None
    client = client or configured_client()
    if client is None:
        return NOT_CONFIGURED
    if not wanted:
        if own:
            client.close()
        return MemberCheck(CheckState.checked)
    try:
        return _check(client, wanted, time.monotonic() if now is None else now)
    except WeComError as exc:
        return MemberCheck(CheckState.unreachable, reason_key=exc.reason_key,
                           reason_params={"errcode": str(exc.errcode), "errmsg": exc.errmsg[:200]})
    finally:
        if own:
            client.close()


def _check(client: WeComClient, wanted: list[str], now: float) -> MemberCheck:
    key = (client.base_url, client.corp_id)
    with _lock:
        cached = _follow.get(key)
    if cached is None or cached[0] <= now:
        follow = frozenset(u.lower() for u in client.follow_users())
        with _lock:
            _follow[key] = (now + CACHE_SECONDS, follow)
    else:
        follow = cached[1]
    problems: dict[str, MemberProblem] = {}
    lookups = 0
    for userid in (u for u in wanted if u not in follow):
        with _lock:
            known = _details.get((*key, userid))
        if known is not None and known[0] > now:
            problems[userid] = known[1]
            continue
        if lookups >= DETAIL_LOOKUPS:
            problems[userid] = MemberProblem.not_in_follow_list
            continue
        lookups += 1
        problems[userid] = _why_missing(client, userid)
        with _lock:
            _details[(*key, userid)] = (now + CACHE_SECONDS, problems[userid])
    return MemberCheck(CheckState.checked, problems)


def _why_missing(client: WeComClient, userid: str) -> MemberProblem:
    try:
        status = int(client.call("user/get", params={"userid": userid}).get("status", 0))
    except WeComError as exc:
        if exc.errcode == USERID_NOT_FOUND:
            return MemberProblem.unknown
        if exc.reason_key == NETWORK_REASON:
            raise
        # Outside the app's scope (60011) or any other refusal: WeCom will not let it take customers.
        return MemberProblem.not_in_follow_list
    return MemberProblem.no_customer_contact if status == ACTIVE else MemberProblem.inactive

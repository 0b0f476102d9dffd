"""The simulator's 获客链接 (customer acquisition links, issue 11): create/update/delete/get/
list_link with WeCom's checks (link_name 1–30 characters, 1–500 members in `range.user_list`,
members with customer contact, unknown link_id), the corp's quota, whose balance
falls by one for every customer added through a link, and per-link statistics
over at most 30 days.

A link's URL points at `/_simulator/ca/<link_id>` on the simulator: opening it is a
customer clicking the link and adding one of its members; with `customer_channel=X`
the add's State is X, so the console's callback attributes it as WeCom would. An
add needs a balance left (WeCom stops such adds when the quota is used up). The rate
limits are the simulator's per-API ones (demo/simulator.py).
"""

import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NAME_MAX = 30
USERS_MAX = 500
STATISTIC_MAX_SECONDS = 30 * 86400
# The simulator's answers: WeCom's "invalid parameter" for bad names, ranges and unknown
# link_ids — an assumption, as neither WECOM.md nor WeCom's global code list names
# codes for them (core.wecom.client.LINK_NOT_FOUND) — and 84074 (WECOM.md) for
# members without customer contact.
INVALID_PARAMETER = 40058
DEFAULT_QUOTA = 1000
LIST_LIMIT_MAX = 100


@dataclass
class Link:
    link_id: str
    name: str
    users: list[str]
    skip_verify: bool
    created_at: int
    # (time, "click" | "add") for the statistic API.
    events: list[tuple[float, str]] = field(default_factory=list)


class AcquisitionLinks:
    """Links of one corp; `member_errcode(userid)` says whether a member may serve a
    link (0) or why not, `added(userid, state)` makes the member gain the customer
    and tells the console (returns the callback's HTTP status)."""

    def __init__(self, *, base_url: Callable[[], str], member_errcode: Callable[[str], int],
                 added: Callable[[str, str], int | None], quota: int = DEFAULT_QUOTA) -> None:
        self._base_url = base_url
        self._member_errcode = member_errcode
        self._added = added
        self.total = quota
        self.balance = quota
        self.links: dict[str, Link] = {}
        self._lock = threading.Lock()

    # -- control (tests and demo) -------------------------------------------

    def set_quota(self, *, total: int, balance: int) -> None:
        with self._lock:
            self.total, self.balance = total, balance

    def url_of(self, link_id: str) -> str:
        return f"{self._base_url()}/_simulator/ca/{link_id}"

    def open(self, link_id: str, customer_channel: str = "", *, add: bool = True,
             at: float | None = None) -> tuple[int, str]:
        """A customer opens the link (a click) and, with `add`, adds one of its members
        (at random, as WeCom spreads a link's range). Answers (HTTP status, page)."""
        now = time.time() if at is None else at
        with self._lock:
            link = self.links.get(link_id)
            if link is None:
                return 404, "链接已失效"
            link.events.append((now, "click"))
            if not add:
                return 200, f"已打开 {link.name}"
            if self.balance <= 0:
                return 200, "获客额度已用完，暂时无法添加"
            self.balance -= 1
            link.events.append((now, "add"))
            userid = random.choice(link.users)
        status = self._added(userid, customer_channel)
        return 200, f"已添加 {userid} 为联系人（State {customer_channel}，回调 {status}）"

    # -- the APIs ---------------------------------------------------------------

    def api(self, api: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The answer to a link API; None for any other API."""
        if api == "externalcontact/customer_acquisition/create_link":
            return self._create(body)
        if api == "externalcontact/customer_acquisition/update_link":
            return self._update(body)
        if api == "externalcontact/customer_acquisition/delete_link":
            with self._lock:
                if self.links.pop(str(body.get("link_id") or ""), None) is None:
                    return _error(INVALID_PARAMETER, "invalid link_id")
            return {"errcode": 0, "errmsg": "ok"}
        if api == "externalcontact/customer_acquisition/get":
            with self._lock:
                link = self.links.get(str(body.get("link_id") or ""))
                if link is None:
                    return _error(INVALID_PARAMETER, "invalid link_id")
                return {"errcode": 0, "errmsg": "ok",
                        "link": {"link_id": link.link_id, "link_name": link.name, "url": self.url_of(link.link_id),
                                 "create_time": link.created_at, "skip_verify": link.skip_verify},
                        "range": {"user_list": list(link.users), "department_list": []}}
        if api == "externalcontact/customer_acquisition/list_link":
            return self._list(body)
        if api == "externalcontact/customer_acquisition_quota":
            with self._lock:
                return {"errcode": 0, "errmsg": "ok", "total": self.total, "balance": self.balance,
                        "quota_list": [{"expire_date": int(time.time()) + 365 * 86400, "balance": self.balance}]}
        if api == "externalcontact/customer_acquisition/statistic":
            return self._statistic(body)
        return None

    def _refused(self, body: dict[str, Any]) -> dict[str, Any] | None:
        name = body.get("link_name")
        if not isinstance(name, str) or not 0 < len(name) <= NAME_MAX:
            return _error(INVALID_PARAMETER, f"link_name must be 1 to {NAME_MAX} characters")
        users = (body.get("range") or {}).get("user_list")
        if not isinstance(users, list) or not users or not all(isinstance(u, str) and u for u in users):
            return _error(INVALID_PARAMETER, "invalid range.user_list")
        if len(users) > USERS_MAX:
            return _error(INVALID_PARAMETER, f"range.user_list exceeds {USERS_MAX}")
        for userid in users:
            errcode = self._member_errcode(userid)
            if errcode:
                return _error(errcode, f"user {userid} cannot serve a link")
        return None

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        refused = self._refused(body)
        if refused:
            return refused
        link_id = "cawcde" + secrets.token_hex(6)
        link = Link(link_id, body["link_name"], list(body["range"]["user_list"]), bool(body.get("skip_verify", True)),
                    int(time.time()))
        with self._lock:
            self.links[link_id] = link
        return {"errcode": 0, "errmsg": "ok", "link": {"link_id": link_id, "link_name": link.name,
                                                        "url": self.url_of(link_id), "create_time": link.created_at}}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        link_id = str(body.get("link_id") or "")
        with self._lock:
            link = self.links.get(link_id)
        if link is None:
            return _error(INVALID_PARAMETER, "invalid link_id")
        refused = self._refused(body)
        if refused:
            return refused
        with self._lock:
            link.name = body["link_name"]
            link.users = list(body["range"]["user_list"])
            if "skip_verify" in body:
                link.skip_verify = bool(body["skip_verify"])
        return {"errcode": 0, "errmsg": "ok"}

    def _list(self, body: dict[str, Any]) -> dict[str, Any]:
        """Every link still valid, oldest first, `limit` (≤ 100) a page."""
        try:
            limit = min(max(int(body.get("limit") or LIST_LIMIT_MAX), 1), LIST_LIMIT_MAX)
            offset = int(body.get("cursor") or 0)
        except (TypeError, ValueError):
            return _error(INVALID_PARAMETER, "invalid limit or cursor")
        with self._lock:
            made = sorted(self.links.values(), key=lambda link: (link.created_at, link.link_id))
        page = made[offset:offset + limit]
        more = offset + limit < len(made)
        return {"errcode": 0, "errmsg": "ok", "link_id_list": [link.link_id for link in page],
                "next_cursor": str(offset + limit) if more else ""}

    def _statistic(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            start, end = int(body["start_time"]), int(body["end_time"])
        except (KeyError, TypeError, ValueError):
            return _error(INVALID_PARAMETER, "invalid start_time or end_time")
        if end < start or end - start > STATISTIC_MAX_SECONDS:
            return _error(INVALID_PARAMETER, "the time range is at most 30 days")
        with self._lock:
            link = self.links.get(str(body.get("link_id") or ""))
            if link is None:
                return _error(INVALID_PARAMETER, "invalid link_id")
            inside = [kind for at, kind in link.events if start <= at <= end]
        return {"errcode": 0, "errmsg": "ok", "click_link_customer_cnt": inside.count("click"),
                "new_customer_cnt": inside.count("add")}


def _error(errcode: int, errmsg: str) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": errmsg}

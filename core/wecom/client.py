"""An httpx client for the WeCom server API (WECOM.md).

- The access token is cached per (corp id, secret) for the whole process and
  refetched once when WeCom says it is invalid (40014, 41001, 42001).
- Each API path has its own pacing limiter (default 9,000 calls/min, below
  WeCom's 10,000), shared by every thread using the client.
- -1, 45009, 45033 and network errors are retried with exponential backoff and
  jitter (busy and network errors at most 3 times); every other errcode becomes a `WeComError` carrying an operator
  reason key (see `REASONS`).
"""

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("wecom")
# One line per request would bury the sidecar log (a sync makes thousands of calls).
logging.getLogger("httpx").setLevel(logging.WARNING)

TOKEN_INVALID = {40014, 41001, 42001}
BUSY = -1
THROTTLED = {45009, 45033}
BUSY_RETRIES = 3
# Reason keys in the message catalog (i18n/wecom.py); an errcode not listed
# here is shown with its number and WeCom's errmsg.
REASONS = {
    40001: "wecom.reason.bad_secret",
    40013: "wecom.reason.bad_corpid",
    40003: "wecom.reason.bad_userid",
    48002: "wecom.reason.api_not_allowed",
    60011: "wecom.reason.no_privilege",
    60020: "wecom.reason.ip_not_trusted",
    60111: "wecom.reason.userid_not_found",
    84061: "wecom.reason.not_customer_contact",
    84074: "wecom.reason.no_customer_contact_permission",
    40058: "wecom.reason.invalid_parameter",
    41041: "wecom.reason.contact_way_too_many_members",
    41044: "wecom.reason.contact_way_not_found",
    41045: "wecom.reason.contact_way_quota",
    45009: "wecom.reason.rate_limited",
    45033: "wecom.reason.concurrency_limited",
    -1: "wecom.reason.busy",
}
NETWORK_REASON = "wecom.reason.network"
# WeCom's global error codes (document 90313) for contact ways: a config_id it does
# not know (deleted elsewhere) for get/update/del_contact_way, more members than a
# way takes (100), and the corp's API-made ways at their limit (500,000).
CONTACT_WAY_NOT_FOUND = 41044
CONTACT_WAY_TOO_MANY_MEMBERS = 41041
CONTACT_WAY_QUOTA = 41045
# A link_id WeCom does not know (deleted elsewhere) for the 获客链接 APIs. An
# assumption: neither WECOM.md nor the global code list names one, so we take
# the generic "invalid parameter" (40058) and the simulator answers it.
LINK_NOT_FOUND = 40058
# A contact way's state and remark, in characters.
CONTACT_WAY_TEXT_MAX = 30
NOT_IN_SCOPE_REASON = "wecom.reason.not_in_follow_list"
# 获客链接: link_name in characters, members per link, the span of one statistic call,
# link_ids per page of list_link.
LINK_NAME_MAX = 30
LINK_USERS_MAX = 500
LINK_LIST_LIMIT = 100
LINK_STATISTIC_MAX_SECONDS = 30 * 86400


class WeComError(Exception):
    """A WeCom answer (or network failure) that retrying did not fix."""

    def __init__(self, errcode: int | None, errmsg: str, api: str) -> None:
        super().__init__(f"{api}: errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api

    @property
    def reason_key(self) -> str:
        if self.errcode is None:
            return NETWORK_REASON
        return REASONS.get(self.errcode, "wecom.reason.other")


class RateLimiter:
    """Paces calls evenly at `per_minute`, so no 60-second window ever holds more
    (a burst then a wait would break WeCom's per-minute count at the window edge)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 60.0 / per_minute
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


@dataclass
class _Token:
    value: str
    expires_at: float


_TOKENS: dict[tuple[str, str, str], _Token] = {}
_TOKEN_LOCK = threading.Lock()


def forget_tokens() -> None:
    """Drop every cached token (a changed secret, or tests)."""
    with _TOKEN_LOCK:
        _TOKENS.clear()


@dataclass
class RetryPolicy:
    base_seconds: float = 2.0
    max_seconds: float = 60.0
    # Total attempts for throttling and network errors before giving up.
    max_attempts: int = 8

    def delay(self, attempt: int) -> float:
        """Full jitter: a random wait up to base·2^attempt, capped."""
        return random.uniform(self.base_seconds / 2, min(self.max_seconds, self.base_seconds * 2 ** attempt))


@dataclass
class WeComClient:
    base_url: str
    corp_id: str
    secret: str
    per_minute: int = 9000
    timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_connections: int = 32

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._http = httpx.Client(timeout=self.timeout, limits=httpx.Limits(
            max_connections=self.max_connections, max_keepalive_connections=self.max_connections))
        self._limiters: dict[str, RateLimiter] = {}
        self._limiters_lock = threading.Lock()
        self.stats = {"calls": 0, "retries": 0, "throttled": 0, "token_refreshes": 0}
        self._stats_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "WeComClient":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    def _limiter(self, api: str) -> RateLimiter:
        with self._limiters_lock:
            limiter = self._limiters.get(api)
            if limiter is None:
                limiter = self._limiters[api] = RateLimiter(self.per_minute)
            return limiter

    # -- token -------------------------------------------------------------

    def _token_key(self) -> tuple[str, str, str]:
        return (self.base_url, self.corp_id, self.secret)

    def access_token(self, *, stale: str | None = None) -> str:
        """The cached token; refetched when missing, expiring, or equal to
        `stale` (the one WeCom just refused) — so concurrent callers that all saw
        the same refusal refetch it once."""
        key = self._token_key()
        with _TOKEN_LOCK:
            token = _TOKENS.get(key)
            if token and token.value != stale and token.expires_at > time.monotonic():
                return token.value
            answer = self._call_raw("gettoken", "GET", {"corpid": self.corp_id, "corpsecret": self.secret})
            # Refresh a little early: a token about to expire fails mid-sync.
            lifetime = max(60, int(answer.get("expires_in", 7200)) - 300)
            _TOKENS[key] = _Token(answer["access_token"], time.monotonic() + lifetime)
            self._count("token_refreshes")
            return answer["access_token"]

    # -- calls -------------------------------------------------------------

    def _call_raw(self, api: str, method: str, params: dict[str, Any], body: Any = None) -> dict[str, Any]:
        """One API call with pacing and retries; raises WeComError."""
        busy_retries = 0
        attempt = 0
        while True:
            self._limiter(api).acquire()
            self._count("calls")
            try:
                response = self._http.request(method, f"{self.base_url}/cgi-bin/{api}", params=params, json=body)
                answer = response.json()
                errcode = int(answer.get("errcode", 0))
                errmsg = str(answer.get("errmsg", ""))
            except (httpx.HTTPError, ValueError) as exc:
                errcode, errmsg, answer = None, f"{type(exc).__name__}: {exc}", {}
            if errcode == 0:
                return answer
            # Busy and network errors: at most 3 retries (WECOM.md); throttling: back off longer.
            retryable = errcode in THROTTLED or (errcode in (BUSY, None) and busy_retries < BUSY_RETRIES)
            if errcode in (BUSY, None):
                busy_retries += 1
            if errcode in THROTTLED:
                self._count("throttled")
            attempt += 1
            if not retryable or attempt >= self.retry.max_attempts:
                raise WeComError(errcode, errmsg, api)
            self._count("retries")
            wait = self.retry.delay(attempt)
            log.info("wecom %s: errcode %s (%s), retry %d in %.1f s", api, errcode, errmsg, attempt, wait)
            time.sleep(wait)

    def call(self, api: str, *, method: str = "GET", params: dict[str, Any] | None = None,
             body: Any = None) -> dict[str, Any]:
        """An authenticated call; a refused token is refetched once and the call retried once."""
        token = self.access_token()
        try:
            return self._call_raw(api, method, {**(params or {}), "access_token": token}, body)
        except WeComError as exc:
            if exc.errcode not in TOKEN_INVALID:
                raise
        token = self.access_token(stale=token)
        return self._call_raw(api, method, {**(params or {}), "access_token": token}, body)

    def follow_users(self) -> list[str]:
        """Members with customer contact enabled, within the app's scope."""
        return list(self.call("externalcontact/get_follow_user_list").get("follow_user", []))

    def customer_count(self, userid: str) -> int:
        """There is no count API: the count is the length of the member's customer list."""
        return len(self.call("externalcontact/list", params={"userid": userid}).get("external_userid", []))

    # -- contact ways (门店活码) ---------------------------------------------

    def add_contact_way(self, *, user: str, state: str, remark: str, skip_verify: bool) -> tuple[str, str]:
        """A QR contact way serving `user`: its (config_id, qr_code)."""
        # WeCom refuses a longer state, and a code cut short would attribute adds to no store.
        if len(state) > CONTACT_WAY_TEXT_MAX or len(remark) > CONTACT_WAY_TEXT_MAX:
            raise ValueError(f"state and remark are at most {CONTACT_WAY_TEXT_MAX} characters: {state!r}, {remark!r}")
        answer = self.call("externalcontact/add_contact_way", method="POST", body={
            "type": 2, "scene": 2, "user": [user], "state": state, "remark": remark, "skip_verify": skip_verify})
        return str(answer["config_id"]), str(answer.get("qr_code") or "")

    def get_contact_way(self, config_id: str) -> dict[str, Any]:
        """The whole configuration (`user`, `state`, `qr_code`, …)."""
        answer = self.call("externalcontact/get_contact_way", method="POST", body={"config_id": config_id})
        return dict(answer.get("contact_way") or {})

    def update_contact_way(self, *, config_id: str, user: str, state: str, remark: str, skip_verify: bool) -> None:
        """The same config_id and QR now serve `user` (the member list is replaced);
        the state is sent again, so a way changed elsewhere gets it back."""
        if len(state) > CONTACT_WAY_TEXT_MAX or len(remark) > CONTACT_WAY_TEXT_MAX:
            raise ValueError(f"state and remark are at most {CONTACT_WAY_TEXT_MAX} characters: {state!r}, {remark!r}")
        self.call("externalcontact/update_contact_way", method="POST", body={
            "config_id": config_id, "user": [user], "state": state, "remark": remark, "skip_verify": skip_verify})

    def del_contact_way(self, config_id: str) -> None:
        self.call("externalcontact/del_contact_way", method="POST", body={"config_id": config_id})

    def list_contact_ways(self, *, start_time: int, end_time: int) -> list[str]:
        """The config_ids of the ways made between the two times (seconds), every page."""
        config_ids: list[str] = []
        cursor = ""
        while True:
            answer = self.call("externalcontact/list_contact_way", method="POST", body={
                "start_time": start_time, "end_time": end_time, "cursor": cursor, "limit": 1000})
            config_ids += [str(way["config_id"]) for way in answer.get("contact_way", [])]
            cursor = str(answer.get("next_cursor") or "")
            if not cursor:
                return config_ids

    # -- 获客链接 (customer acquisition links) ------------------------------

    def create_link(self, *, link_name: str, user_list: list[str], skip_verify: bool = True) -> tuple[str, str]:
        """A link opening one of `user_list`'s profiles: its (link_id, url)."""
        _check_link(link_name, user_list)
        answer = self.call("externalcontact/customer_acquisition/create_link", method="POST", body={
            "link_name": link_name, "range": {"user_list": user_list}, "skip_verify": skip_verify})
        link = answer.get("link") or {}
        return str(link["link_id"]), str(link.get("url") or "")

    def update_link(self, *, link_id: str, link_name: str, user_list: list[str], skip_verify: bool = True) -> None:
        """The same link_id and URL now open `user_list` (the range is replaced)."""
        _check_link(link_name, user_list)
        self.call("externalcontact/customer_acquisition/update_link", method="POST", body={
            "link_id": link_id, "link_name": link_name, "range": {"user_list": user_list},
            "skip_verify": skip_verify})

    def delete_link(self, link_id: str) -> None:
        self.call("externalcontact/customer_acquisition/delete_link", method="POST", body={"link_id": link_id})

    def list_links(self) -> list[str]:
        """The link_ids of every link this app made that is still valid, every page."""
        link_ids: list[str] = []
        cursor = ""
        while True:
            answer = self.call("externalcontact/customer_acquisition/list_link", method="POST",
                               body={"limit": LINK_LIST_LIMIT, "cursor": cursor})
            link_ids += [str(link_id) for link_id in answer.get("link_id_list", [])]
            cursor = str(answer.get("next_cursor") or "")
            if not cursor:
                return link_ids

    def get_link(self, link_id: str) -> dict[str, Any]:
        """A link's configuration: `link_name`, `url`, `create_time` (seconds) and
        `user_list` (its range's members)."""
        answer = self.call("externalcontact/customer_acquisition/get", method="POST", body={"link_id": link_id})
        link = dict(answer.get("link") or {})
        return {**link, "link_id": link_id, "user_list": list((answer.get("range") or {}).get("user_list") or [])}

    def acquisition_quota(self) -> tuple[int, int]:
        """The corp's (total, balance) of link adds."""
        answer = self.call("externalcontact/customer_acquisition_quota")
        return int(answer.get("total", 0)), int(answer.get("balance", 0))

    def link_statistic(self, *, link_id: str, start_time: int, end_time: int) -> tuple[int, int]:
        """(customers who clicked, new customers) of the link between the two times (seconds, ≤ 30 days apart)."""
        if end_time - start_time > LINK_STATISTIC_MAX_SECONDS:
            raise ValueError("customer_acquisition/statistic covers at most 30 days per call")
        answer = self.call("externalcontact/customer_acquisition/statistic", method="POST", body={
            "link_id": link_id, "start_time": start_time, "end_time": end_time})
        return int(answer.get("click_link_customer_cnt", 0)), int(answer.get("new_customer_cnt", 0))


def _check_link(link_name: str, user_list: list[str]) -> None:
    # WeCom refuses these; a name cut short elsewhere would hide which store a link is.
    if not link_name or len(link_name) > LINK_NAME_MAX:
        raise ValueError(f"link_name is 1 to {LINK_NAME_MAX} characters: {link_name!r}")
    if not user_list or len(user_list) > LINK_USERS_MAX:
        raise ValueError(f"a link serves 1 to {LINK_USERS_MAX} members")

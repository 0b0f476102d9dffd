"""The simulator's people (issue 12): WeCom members and their statuses, the QR
login and OAuth2 member picker with single-use codes, app messages with WeCom's
per-member limits and duplicate check, departed members' customers awaiting
transfer, and `change_contact` callbacks signed and encrypted as WeCom does.

The pages imitate WeCom's own screens, so their words live here rather than in
the console's message catalog.
"""

import hashlib
import html
import json
import logging
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from core.wecom.callback_crypto import CallbackCrypto
from demo.callbacks import post_event

log = logging.getLogger("wecom.simulator")

ACTIVE, LEFT = 1, 5
CODE_TTL_SECONDS = 300
MEMBER_PER_MINUTE = 30
MEMBER_PER_HOUR = 1000
DUPLICATE_CHECK_DEFAULT_SECONDS = 1800
APP_INBOX_KEEP = 2000
UNASSIGNED_PAGE_MAX = 1000
PICKER_TITLE = "企业微信扫码登录（模拟）"


def customer_ids(userid: str, count: int) -> list[str]:
    """The external userids of a member's customers, as `externalcontact/list` names them."""
    prefix = hashlib.md5(userid.encode()).hexdigest()[:10]
    return [f"wm{prefix}{number:08d}" for number in range(count)]


@dataclass
class Member:
    userid: str
    name: str
    status: int = ACTIVE
    customer_contact: bool = True


@dataclass(frozen=True)
class AppMessage:
    userid: str
    title: str
    description: str
    url: str
    btntxt: str
    at: float
    msgid: str


@dataclass(frozen=True)
class Unassigned:
    handover_userid: str
    external_userid: str
    dimission_time: int


class People:
    """Members, logins, app messages and callbacks; the simulator delegates to it."""

    def __init__(self, *, corp_id: str, agent_id: str, code_ttl_seconds: float = CODE_TTL_SECONDS,
                 member_per_minute: int = MEMBER_PER_MINUTE, member_per_hour: int = MEMBER_PER_HOUR,
                 callback_url: str | None = None, callback_token: str | None = None,
                 callback_aes_key: str | None = None) -> None:
        self.corp_id = corp_id
        self.agent_id = str(agent_id)
        self.code_ttl_seconds = code_ttl_seconds
        self.member_per_minute = member_per_minute
        self.member_per_hour = member_per_hour
        self.callback_url = callback_url
        self.crypto = CallbackCrypto(callback_token, callback_aes_key, corp_id) \
            if callback_url and callback_token and callback_aes_key else None
        # Keyed by lower-case userid: WeCom userids are case-insensitive.
        self.members: dict[str, Member] = {}
        self.inbox: deque[AppMessage] = deque(maxlen=APP_INBOX_KEEP)
        # Messages a member's limits swallowed (WeCom drops them without a word).
        self.dropped: dict[str, int] = defaultdict(int)
        self.unassigned: list[Unassigned] = []
        self._codes: dict[str, tuple[str, float]] = {}
        self._delivered: dict[str, deque[float]] = defaultdict(deque)
        self._last_content: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    # -- members -------------------------------------------------------------

    def set_members(self, members: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            for userid, fields in members.items():
                self.members[userid.lower()] = Member(userid, fields.get("name") or userid,
                                                      int(fields.get("status", ACTIVE)),
                                                      bool(fields.get("customer_contact", True)))

    def may_follow(self, key: str) -> bool:
        """Whether `get_follow_user_list` names this member: anyone unknown to the
        registry (tests that only set customers), else active members with customer contact."""
        with self._lock:
            member = self.members.get(key)
        return member is None or (member.status == ACTIVE and member.customer_contact)

    def contact_members(self) -> list[str]:
        """Lower-cased userids of the active members with customer contact."""
        with self._lock:
            return [key for key, member in self.members.items() if member.status == ACTIVE and member.customer_contact]

    def userid_of(self, key: str) -> str:
        with self._lock:
            member = self.members.get(key)
        return member.userid if member else key

    def change_status(self, userid: str, status: int, customers: int) -> None:
        """A member's new status; one who left hands `customers` over for transfer."""
        now = int(time.time())
        with self._lock:
            member = self.members.setdefault(userid.lower(), Member(userid, userid))
            member.status = status
            if status == LEFT:
                self.unassigned.extend(Unassigned(member.userid, external, now)
                                       for external in customer_ids(member.userid, customers))

    def post_change_contact(self, userid: str, change_type: str, status: int | None = None) -> int | None:
        """POSTs the `change_contact` event to the console as WeCom does, retrying
        like WeCom; the console's last HTTP status, None when unreachable or no callback is set."""
        if self.crypto is None or not self.callback_url:
            return None
        message = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
                   f"<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{int(time.time())}</CreateTime>"
                   "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>"
                   f"<ChangeType><![CDATA[{change_type}]]></ChangeType><UserID><![CDATA[{userid}]]></UserID>"
                   + (f"<Status>{status}</Status>" if status is not None else "") + "</xml>")
        answer = post_event(crypto=self.crypto, corp_id=self.corp_id, agent_id=self.agent_id,
                            callback_url=self.callback_url, message=message,
                            what=f"change_contact {change_type} {userid}")
        log.info("change_contact %s %s → %s", change_type, userid, answer)
        return answer

    # -- APIs ----------------------------------------------------------------

    def api(self, api: str, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any] | None:
        """The answer to one of the people APIs; None for any other API."""
        if api == "user/get":
            with self._lock:
                member = self.members.get(query.get("userid", "").lower())
            if member is None:
                return {"errcode": 60111, "errmsg": "userid not found"}
            return {"errcode": 0, "errmsg": "ok", "userid": member.userid, "name": member.name,
                    "status": member.status}
        if api == "auth/getuserinfo":
            with self._lock:
                userid, expires = self._codes.pop(query.get("code", ""), ("", 0.0))
            if not userid or expires < time.monotonic():
                return {"errcode": 40029, "errmsg": "invalid code"}
            return {"errcode": 0, "errmsg": "ok", "userid": userid}
        if api == "message/send":
            return self._send_app_message(body)
        if api == "externalcontact/get_unassigned_list":
            return self._unassigned_page(body)
        return None

    def _send_app_message(self, body: dict[str, Any]) -> dict[str, Any]:
        if str(body.get("agentid", "")) != self.agent_id:
            return {"errcode": 40056, "errmsg": "invalid agentid"}
        msgtype = body.get("msgtype")
        content = body.get(msgtype) if msgtype in ("textcard", "text") else None
        if not isinstance(content, dict):
            return {"errcode": 40008, "errmsg": "invalid message type"}
        if msgtype == "textcard":
            card = (str(content.get("title") or ""), str(content.get("description") or ""),
                    str(content.get("url") or ""), str(content.get("btntxt") or "详情"))
            if not (card[0] and card[1] and card[2]):
                return {"errcode": 44004, "errmsg": "empty content"}
        else:
            card = ("", str(content.get("content") or ""), "", "")
            if not card[1]:
                return {"errcode": 44004, "errmsg": "empty content"}
        touser = [userid for userid in str(body.get("touser") or "").split("|") if userid]
        if not touser:
            return {"errcode": 81013, "errmsg": "user & party & tag all invalid"}
        duplicate_window = 0.0
        if body.get("enable_duplicate_check") in (1, True, "1"):
            duplicate_window = float(body.get("duplicate_check_interval") or DUPLICATE_CHECK_DEFAULT_SECONDS)
        fingerprint = json.dumps([msgtype, content], ensure_ascii=False, sort_keys=True)
        msgid = secrets.token_urlsafe(24)
        invalid: list[str] = []
        with self._lock:
            for userid in touser:
                member = self.members.get(userid.lower())
                if member is None or member.status != ACTIVE:
                    invalid.append(userid)
                    continue
                if self._admits(member.userid.lower(), fingerprint, duplicate_window):
                    self.inbox.append(AppMessage(member.userid, *card, at=time.time(), msgid=msgid))
        return {"errcode": 0, "errmsg": "ok", "invaliduser": "|".join(invalid), "msgid": msgid}

    def _admits(self, key: str, fingerprint: str, duplicate_window: float) -> bool:
        """Whether one message reaches this member now (called under the lock):
        a duplicate within the window is skipped, the excess over the limits dropped."""
        now = time.monotonic()
        last = self._last_content.get((key, fingerprint))
        if duplicate_window and last is not None and now - last < duplicate_window:
            return False
        window = self._delivered[key]
        while window and window[0] <= now - 3600:
            window.popleft()
        last_minute = sum(1 for at in window if at > now - 60)
        if last_minute >= self.member_per_minute or len(window) >= self.member_per_hour:
            self.dropped[key] += 1
            return False
        window.append(now)
        self._last_content[(key, fingerprint)] = now
        return True

    def _unassigned_page(self, body: dict[str, Any]) -> dict[str, Any]:
        cursor = str(body.get("cursor") or "0")
        try:
            page_size = min(max(int(body.get("page_size") or UNASSIGNED_PAGE_MAX), 1), UNASSIGNED_PAGE_MAX)
        except (TypeError, ValueError):
            return {"errcode": 40058, "errmsg": "invalid page_size"}
        if not cursor.isdigit():
            return {"errcode": 40058, "errmsg": "invalid cursor"}
        start = int(cursor)
        with self._lock:
            page = self.unassigned[start:start + page_size]
            is_last = start + page_size >= len(self.unassigned)
        return {"errcode": 0, "errmsg": "ok",
                "info": [{"handover_userid": u.handover_userid, "external_userid": u.external_userid,
                          "dimission_time": u.dimission_time} for u in page],
                "is_last": is_last, "next_cursor": "" if is_last else str(start + page_size)}

    # -- login pages -----------------------------------------------------------

    def picker(self, query: dict[str, str], *, qr_login: bool) -> tuple[int, str]:
        """The QR login (and OAuth2) page: the active members to "scan" as."""
        refused = self._refusal(query) or ("参数错误：缺少 agentid" if qr_login and "agentid" not in query else "")
        if refused:
            return 400, _page("企业微信登录出错", f"<p>{html.escape(refused)}</p>")
        with self._lock:
            active = sorted((m for m in self.members.values() if m.status == ACTIVE), key=lambda m: m.userid)
        carried = {key: query[key] for key in ("appid", "agentid", "redirect_uri", "state") if key in query}
        links = "".join(
            f'<li><a href="/_simulator/scan?{html.escape(urlencode({**carried, "userid": m.userid}))}">'
            f"以 {html.escape(m.name)}（{html.escape(m.userid)}）扫码确认</a></li>" for m in active)
        return 200, _page(PICKER_TITLE, "<p>模拟器：选择用哪位成员的企业微信扫码。</p>"
                                        f"<ul>{links or '<li>没有在职成员</li>'}</ul>")

    def scan(self, query: dict[str, str]) -> tuple[int, str]:
        """A member confirmed: a new code for the console's callback, as (302, location),
        or (400, an error page). Any member of the registry may confirm, so a test
        can make the member leave between showing the page and the scan."""
        refused = self._refusal(query)
        with self._lock:
            member = self.members.get(query.get("userid", "").lower())
        if not refused and member is None:
            refused = "该成员不在企业通讯录中"
        if refused or member is None:
            return 400, _page("企业微信登录出错", f"<p>{html.escape(refused)}</p>")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = (member.userid, time.monotonic() + self.code_ttl_seconds)
        return 302, _with_query(query["redirect_uri"], code=code, state=query.get("state", ""))

    def _refusal(self, query: dict[str, str]) -> str:
        if query.get("appid") != self.corp_id:
            return "参数错误：appid 与企业不符"
        # OAuth2 inside WeCom may leave agentid out (snsapi_base); the QR login must carry it (see picker).
        if "agentid" in query and query["agentid"] != self.agent_id:
            return "参数错误：agentid 与应用不符"
        if not query.get("redirect_uri", "").startswith(("http://", "https://")):
            return "参数错误：redirect_uri 无效"
        return ""

    def messages(self) -> list[AppMessage]:
        with self._lock:
            return list(self.inbox)


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))

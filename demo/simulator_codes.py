"""The simulator's contact ways (「联系我」, issue 11): add/get/update/del/list with
WeCom's checks (state and remark ≤ 30 characters, type 1 one member and type 2
at most 100, members with customer contact, unknown config_id, 500,000 ways per
corp), a real QR image per way, and customers adding through a way.

The QR encodes `/_simulator/contact/<config_id>` on the simulator: opening it is
a customer scanning the code and adding one of its members, so WeCom's signed
`add_external_contact` callback (with the way's State) reaches the console.
The rate limits are the simulator's per-API ones (demo/simulator.py).
"""

import io
import itertools
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import qrcode

from core.wecom.callback_crypto import CallbackCrypto
from demo.callbacks import post_event

log = logging.getLogger("wecom.simulator")

TEXT_MAX = 30
TYPE2_MEMBERS_MAX = 100
WAYS_PER_CORP = 500_000
LIST_LIMIT_MAX = 1000
# The errcodes this simulator answers. WeCom's global code list (document 90313)
# names the contact-way ones: an invalid type or scene, too many members, a
# config_id it does not know, the corp's API-made ways at their limit; WECOM.md
# names 84074 for members without customer contact. Where neither says (a state
# or remark over 30 characters, a malformed user list or list request) we answer
# the generic "invalid parameter", an assumption.
INVALID_PARAMETER = 40058
INVALID_TYPE = 41039
INVALID_SCENE = 41040
TOO_MANY_MEMBERS = 41041
WAY_NOT_FOUND = 41044
QUOTA_EXCEEDED = 41045
NO_CUSTOMER_CONTACT = 84074
USER_NOT_FOUND = 60111


@dataclass
class Way:
    config_id: str
    type: int
    scene: int
    user: list[str]
    state: str
    remark: str
    skip_verify: bool
    created_at: int
    adds: int = 0
    customers: list[str] = field(default_factory=list)


class ContactWays:
    """Contact ways of one corp; `member_errcode(userid)` says whether a member may
    serve a way (0) or why not, `added(userid)` counts a new customer for it."""

    def __init__(self, *, corp_id: str, agent_id: str, base_url: Callable[[], str],
                 member_errcode: Callable[[str], int], added: Callable[[str], None],
                 quota: int = WAYS_PER_CORP, callback_url: str | None = None,
                 callback_crypto: CallbackCrypto | None = None) -> None:
        self.corp_id = corp_id
        self.agent_id = agent_id
        self._base_url = base_url
        self._member_errcode = member_errcode
        self._added = added
        self.quota = quota
        self.callback_url = callback_url
        self.crypto = callback_crypto
        self.ways: dict[str, Way] = {}
        self._customer_numbers = itertools.count(1)
        self._lock = threading.Lock()

    # -- control (tests and demo) -------------------------------------------

    def scan_url(self, config_id: str) -> str:
        """What the way's QR code encodes."""
        return f"{self._base_url()}/_simulator/contact/{config_id}"

    def qr_url(self, config_id: str) -> str:
        return f"{self._base_url()}/_simulator/qr/{config_id}.png"

    def keep(self, config_id: str, *, state: str, user: list[str], remark: str) -> None:
        """A way made before this simulator started (the demo restarting)."""
        with self._lock:
            self.ways[config_id] = Way(config_id, 2, 2, list(user), state, remark, True, int(time.time()))

    def delete_elsewhere(self, config_id: str) -> None:
        """Someone deleted the way with another tool."""
        with self._lock:
            self.ways.pop(config_id, None)

    def change_elsewhere(self, config_id: str, user: list[str]) -> None:
        """Someone changed the way's members with another tool."""
        with self._lock:
            self.ways[config_id].user = list(user)

    def by_state(self) -> dict[str, list[Way]]:
        with self._lock:
            found: dict[str, list[Way]] = {}
            for way in self.ways.values():
                found.setdefault(way.state, []).append(way)
            return found

    def qr_png(self, config_id: str) -> bytes | None:
        with self._lock:
            if config_id not in self.ways:
                return None
        image = qrcode.make(self.scan_url(config_id), box_size=8, border=4)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    def scan(self, config_id: str) -> tuple[int, str]:
        """A customer scans the way and adds one of its members (at random, as
        WeCom spreads a type-2 code): the member gains a customer and the console
        gets `add_external_contact` with the way's State. Answers (HTTP status, page)."""
        with self._lock:
            way = self.ways.get(config_id)
            if way is None or not way.user:
                return 404, "二维码已失效"
            userid = random.choice(way.user)
            external = f"wmsim{next(self._customer_numbers):010d}{secrets.token_hex(3)}"
            way.adds += 1
            state = way.state
        self._added(userid)
        status = self.post_added(userid, external, state)
        return 200, f"已添加 {userid} 为联系人（State {state}，回调 {status}）"

    def post_added(self, userid: str, external_userid: str, state: str) -> int | None:
        """POSTs `add_external_contact` to the console as WeCom does (signed and
        encrypted, retried); the console's last HTTP status, None without a callback."""
        if self.crypto is None or not self.callback_url:
            return None
        message = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
                   f"<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{int(time.time())}</CreateTime>"
                   "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event>"
                   "<ChangeType><![CDATA[add_external_contact]]></ChangeType>"
                   f"<UserID><![CDATA[{userid}]]></UserID><ExternalUserID><![CDATA[{external_userid}]]></ExternalUserID>"
                   f"<State><![CDATA[{state}]]></State><WelcomeCode><![CDATA[{secrets.token_hex(16)}]]></WelcomeCode>"
                   "</xml>")
        return post_event(crypto=self.crypto, corp_id=self.corp_id, agent_id=self.agent_id,
                          callback_url=self.callback_url, message=message, what=f"add_external_contact {userid}")

    def scan_randomly(self, stop: threading.Event, per_minute: float) -> None:
        """Demo mode: customers scan random store codes at about this rate."""
        while not stop.wait(60.0 / per_minute):
            with self._lock:
                config_ids = list(self.ways)
            if config_ids:
                self.scan(random.choice(config_ids))

    # -- the APIs ---------------------------------------------------------------

    def api(self, api: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The answer to a contact-way API; None for any other API."""
        if api == "externalcontact/add_contact_way":
            return self._add(body)
        if api == "externalcontact/get_contact_way":
            with self._lock:
                way = self.ways.get(str(body.get("config_id") or ""))
                if way is None:
                    return _error(WAY_NOT_FOUND, "invalid config_id")
                return {"errcode": 0, "errmsg": "ok", "contact_way": {
                    "config_id": way.config_id, "type": way.type, "scene": way.scene, "remark": way.remark,
                    "skip_verify": way.skip_verify, "state": way.state, "user": list(way.user), "party": [],
                    "qr_code": self.qr_url(way.config_id) if way.scene == 2 else ""}}
        if api == "externalcontact/update_contact_way":
            return self._update(body)
        if api == "externalcontact/del_contact_way":
            with self._lock:
                if self.ways.pop(str(body.get("config_id") or ""), None) is None:
                    return _error(WAY_NOT_FOUND, "invalid config_id")
            return {"errcode": 0, "errmsg": "ok"}
        if api == "externalcontact/list_contact_way":
            return self._list(body)
        return None

    def _members_refused(self, way_type: int, user: Any) -> dict[str, Any] | None:
        if not isinstance(user, list) or not all(isinstance(u, str) and u for u in user):
            return _error(INVALID_PARAMETER, "invalid user")
        if way_type == 1 and len(user) != 1:
            return _error(TOO_MANY_MEMBERS, "type 1 takes exactly one user")
        if len(user) > TYPE2_MEMBERS_MAX:
            return _error(TOO_MANY_MEMBERS, f"user exceeds {TYPE2_MEMBERS_MAX}")
        for userid in user:
            errcode = self._member_errcode(userid)
            if errcode:
                return _error(errcode, f"user {userid} cannot serve a contact way")
        return None

    @staticmethod
    def _text_refused(body: dict[str, Any]) -> dict[str, Any] | None:
        for name in ("state", "remark"):
            if len(str(body.get(name) or "")) > TEXT_MAX:
                return _error(INVALID_PARAMETER, f"{name} exceeds {TEXT_MAX} characters")
        return None

    def _add(self, body: dict[str, Any]) -> dict[str, Any]:
        way_type, scene = body.get("type"), body.get("scene")
        if way_type not in (1, 2):
            return _error(INVALID_TYPE, "invalid contact way type")
        if scene not in (1, 2):
            return _error(INVALID_SCENE, "invalid contact way scene")
        refused = self._text_refused(body) or self._members_refused(way_type, body.get("user"))
        if refused:
            return refused
        config_id = secrets.token_hex(16)
        with self._lock:
            if len(self.ways) >= self.quota:
                return _error(QUOTA_EXCEEDED, "contact way count exceeds the limit")
            self.ways[config_id] = Way(config_id, way_type, scene, list(body["user"]), str(body.get("state") or ""),
                                       str(body.get("remark") or ""), bool(body.get("skip_verify", True)),
                                       int(time.time()))
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "config_id": config_id}
        if scene == 2:
            answer["qr_code"] = self.qr_url(config_id)
        return answer

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        config_id = str(body.get("config_id") or "")
        with self._lock:
            way = self.ways.get(config_id)
        if way is None:
            return _error(WAY_NOT_FOUND, "invalid config_id")
        refused = self._text_refused(body)
        if refused is None and "user" in body:
            refused = self._members_refused(way.type, body["user"])
        if refused:
            return refused
        with self._lock:
            if "user" in body:
                way.user = list(body["user"])
            for name in ("state", "remark"):
                if name in body:
                    setattr(way, name, str(body[name] or ""))
            if "skip_verify" in body:
                way.skip_verify = bool(body["skip_verify"])
        return {"errcode": 0, "errmsg": "ok"}

    def _list(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            limit = min(max(int(body.get("limit") or 100), 1), LIST_LIMIT_MAX)
            start = int(body.get("start_time") or 0)
            end = int(body.get("end_time") or time.time())
            offset = int(body.get("cursor") or 0)
        except (TypeError, ValueError):
            return _error(INVALID_PARAMETER, "invalid parameter")
        with self._lock:
            made = sorted((w for w in self.ways.values() if start <= w.created_at <= end),
                          key=lambda w: (w.created_at, w.config_id))
        page = made[offset:offset + limit]
        more = offset + limit < len(made)
        return {"errcode": 0, "errmsg": "ok", "contact_way": [{"config_id": w.config_id} for w in page],
                "next_cursor": str(offset + limit) if more else ""}


def _error(errcode: int, errmsg: str) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": errmsg}

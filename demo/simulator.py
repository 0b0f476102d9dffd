"""A local WeCom server simulator and robot inbox, over real HTTP on loopback.

Used by the demo (`python -m console simulator`) and by the tests. It speaks the
shapes in WECOM.md: `gettoken` (tokens expire), `externalcontact/
get_follow_user_list`, `externalcontact/list`, and group-robot endpoints for
WeCom (`webhook/send`), DingTalk (`robot/send`, signed) and Feishu
(`open-apis/bot/v2/hook/<token>`, signed) plus a generic JSON webhook
(`hook/<name>`). Per-API rate limits, injectable errcodes, HTTP errors and
delays make the failure paths testable. In demo mode a few members gain
customers over time. `GET /_simulator/inbox` lists what the robots received.

Members, QR/OAuth2 login, app messages (`GET /_simulator/app_inbox`), departed
members' customers and `change_contact` callbacks: demo/simulator_people.py.
获客链接, their quota and statistics (`GET /_simulator/ca/<link_id>` is a customer
adding through one): demo/simulator_links.py.
"""

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from demo.simulator_codes import NO_CUSTOMER_CONTACT, USER_NOT_FOUND, ContactWays
from demo.simulator_links import AcquisitionLinks
from demo.simulator_people import (
    CODE_TTL_SECONDS,
    LEFT,
    MEMBER_PER_HOUR,
    MEMBER_PER_MINUTE,
    AppMessage,
    People,
    customer_ids,
)

log = logging.getLogger("wecom.simulator")

ROBOT_PER_MINUTE = {"wecom": 20, "dingtalk": 20, "feishu": 100, "webhook": 600}
INBOX_KEEP = 500


@dataclass
class Fault:
    """What the next call to an API answers instead of the normal reply."""

    errcode: int | None = None
    http_status: int | None = None
    delay_seconds: float = 0.0
    # With a delay, a robot by default answers 504 without taking the message;
    # `accept` makes it take the message first and answer late (a lost reply).
    accept: bool = False


@dataclass
class RobotMessage:
    kind: str
    robot: str
    text: str
    received_at: float
    payload: dict[str, Any] = field(default_factory=dict)


class WeComSimulator:
    def __init__(self, *, corp_id: str = "wwsimulator", secret: str = "simulator-secret",
                 token_ttl_seconds: int = 7200, per_minute: int | None = None,
                 robot_secrets: dict[str, str] | None = None, robot_per_minute: dict[str, int] | None = None,
                 port: int = 0, host: str = "127.0.0.1", agent_id: str = "1000002",
                 code_ttl_seconds: float = CODE_TTL_SECONDS, member_per_minute: int = MEMBER_PER_MINUTE,
                 member_per_hour: int = MEMBER_PER_HOUR, callback_url: str | None = None,
                 callback_token: str | None = None, callback_aes_key: str | None = None) -> None:
        self.corp_id = corp_id
        self.agent_id = str(agent_id)
        self.secret = secret
        self.token_ttl_seconds = token_ttl_seconds
        # Calls per API in any 60-second window; None = unlimited.
        self.per_minute = per_minute
        self.robot_secrets = robot_secrets or {}
        self.robot_per_minute = {**ROBOT_PER_MINUTE, **(robot_per_minute or {})}
        # Keyed by lower-case userid: WeCom userids are case-insensitive.
        self.customers: dict[str, int] = {}
        # A member's capacity: growth stops there, as WeCom refuses new customers.
        self.limits: dict[str, int] = {}
        self.userids: dict[str, str] = {}
        self.growth: dict[str, float] = {}
        self.inbox: deque[RobotMessage] = deque(maxlen=INBOX_KEEP)
        self.calls: dict[str, int] = defaultdict(int)
        self.answers: dict[int, int] = defaultdict(int)
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._tokens: dict[str, float] = {}
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._robot_windows: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.people = People(corp_id=corp_id, agent_id=self.agent_id, code_ttl_seconds=code_ttl_seconds,
                             member_per_minute=member_per_minute, member_per_hour=member_per_hour,
                             callback_url=callback_url, callback_token=callback_token,
                             callback_aes_key=callback_aes_key)
        self.codes = ContactWays(corp_id=corp_id, agent_id=self.agent_id, base_url=lambda: self.base_url,
                                 member_errcode=self._way_member_errcode, added=self._customer_added,
                                 callback_url=callback_url, callback_crypto=self.people.crypto)
        self.links = AcquisitionLinks(base_url=lambda: self.base_url, member_errcode=self._way_member_errcode,
                                      added=self._link_added)
        simulator = self

        class Handler(_Handler):
            sim = simulator

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://{host}:{self.port}"
        self._threads: list[threading.Thread] = []

    # -- control (tests and demo) -----------------------------------------

    def start(self) -> "WeComSimulator":
        thread = threading.Thread(target=self.server.serve_forever, name="wecom-simulator", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def set_customers(self, counts: dict[str, int]) -> None:
        with self._lock:
            for userid, count in counts.items():
                self.customers[userid.lower()] = count
                self.userids[userid.lower()] = userid

    def set_limits(self, limits: dict[str, int]) -> None:
        with self._lock:
            self.limits.update({userid.lower(): limit for userid, limit in limits.items()})

    def inject(self, api: str, *faults: Fault) -> None:
        """Queue faults for the next calls to `api` (e.g. "externalcontact/list",
        "webhook/send", "robot/send", "feishu", "webhook")."""
        with self._lock:
            self.faults[api].extend(faults)

    def expire_tokens(self) -> None:
        """Invalidate every issued token now (WeCom may do so before expires_in)."""
        with self._lock:
            self._tokens.clear()

    def grow(self, rates_per_minute: dict[str, float], every_seconds: float = 10.0, speed: float = 1.0) -> None:
        """Demo mode: these members gain customers at the given rate per minute,
        up to their limit. `speed` runs the demo's clock faster (tests)."""
        self.growth.update({userid.lower(): rate for userid, rate in rates_per_minute.items()})

        def tick() -> None:
            carry: dict[str, float] = defaultdict(float)
            while not self._stop.wait(every_seconds / speed):
                with self._lock:
                    for userid, rate in self.growth.items():
                        carry[userid] += rate * every_seconds / 60
                        whole = int(carry[userid])
                        carry[userid] -= whole
                        grown = self.customers.get(userid, 0) + whole
                        limit = self.limits.get(userid)
                        self.customers[userid] = grown if limit is None else min(grown, limit)

        thread = threading.Thread(target=tick, name="wecom-simulator-growth", daemon=True)
        thread.start()
        self._threads.append(thread)

    def messages(self, kind: str | None = None) -> list[RobotMessage]:
        with self._lock:
            return [m for m in self.inbox if kind is None or m.kind == kind]

    def set_members(self, members: dict[str, dict[str, Any]]) -> None:
        """WeCom members: {userid: {"name", "status" (1 active, 2 disabled, 4 not
        activated, 5 left), "customer_contact"}}; added to or replacing the known ones."""
        self.people.set_members(members)

    def member_leaves(self, userid: str, status: int = LEFT) -> int | None:
        """The member leaves the company: `user/get` says `status`, the customers of
        one who left (5) await transfer, and the console gets `delete_user`.
        Answers the console's HTTP status (None without a callback)."""
        self._change_status(userid, status)
        return self.people.post_change_contact(userid, "delete_user")

    def member_updates(self, userid: str, status: int) -> int | None:
        """The member's status changes (e.g. disabled, 2): `update_user` with `Status`."""
        self._change_status(userid, status)
        return self.people.post_change_contact(userid, "update_user", status)

    def app_messages(self) -> list[AppMessage]:
        """What members received as app messages (after the limits and the duplicate check)."""
        return self.people.messages()

    def _way_member_errcode(self, userid: str) -> int:
        """Whether a member may serve a contact way: known, active, with customer contact."""
        key = userid.lower()
        with self._lock:
            known = key in self.customers
        if key not in self.people.members and not known:
            return USER_NOT_FOUND
        return 0 if self.people.may_follow(key) else NO_CUSTOMER_CONTACT

    def _link_added(self, userid: str, state: str) -> int | None:
        """A customer added the member through a 获客链接: counted, and the console told."""
        self._customer_added(userid)
        return self.codes.post_added(userid, f"wmsimca{secrets.token_hex(8)}", state)

    def _customer_added(self, userid: str) -> None:
        with self._lock:
            self.customers[userid.lower()] = self.customers.get(userid.lower(), 0) + 1

    def _change_status(self, userid: str, status: int) -> None:
        customers = 0
        if status == LEFT:
            # Gone from the follow list: the customers wait for a colleague, no more growth.
            with self._lock:
                customers = self.customers.pop(userid.lower(), 0)
                self.growth.pop(userid.lower(), None)
        self.people.change_status(userid, status, customers)
        log.info("member %s now has status %s", userid, status)

    # -- behaviour ---------------------------------------------------------

    def _take_fault(self, api: str) -> Fault | None:
        with self._lock:
            queue = self.faults.get(api)
            return queue.popleft() if queue else None

    def _over_limit(self, windows: dict[str, deque[float]], key: str, limit: int | None) -> bool:
        if limit is None:
            return False
        now = time.monotonic()
        with self._lock:
            window = windows[key]
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= limit:
                return True
            window.append(now)
            return False

    def api(self, api: str, query: dict[str, str], body: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._lock:
            self.calls[api] += 1
        fault = self._take_fault(api)
        if fault and fault.errcode is not None:
            return {"errcode": fault.errcode, "errmsg": f"simulated error {fault.errcode}"}
        # Exchanging a login code is exempt from WeCom's call limits.
        if api != "auth/getuserinfo" and self._over_limit(self._windows, api, self.per_minute):
            return {"errcode": 45009, "errmsg": "api freq out of limit"}
        if api == "gettoken":
            if query.get("corpid") != self.corp_id:
                return {"errcode": 40013, "errmsg": "invalid corpid"}
            if query.get("corpsecret") != self.secret:
                return {"errcode": 40001, "errmsg": "invalid credential"}
            token = secrets.token_urlsafe(48)
            with self._lock:
                self._tokens[token] = time.monotonic() + self.token_ttl_seconds
            return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.token_ttl_seconds}
        token = query.get("access_token")
        if not token:
            return {"errcode": 41001, "errmsg": "access_token missing"}
        with self._lock:
            expires = self._tokens.get(token)
        if expires is None:
            return {"errcode": 40014, "errmsg": "invalid access_token"}
        if expires < time.monotonic():
            return {"errcode": 42001, "errmsg": "access_token expired"}
        if api == "externalcontact/get_follow_user_list":
            with self._lock:
                keys = list(self.customers)
            # Members with customer contact follow too before their first customer.
            keys += [key for key in self.people.contact_members() if key not in keys]
            return {"errcode": 0, "errmsg": "ok",
                    "follow_user": [self.userids.get(key) or self.people.userid_of(key)
                                    for key in keys if self.people.may_follow(key)]}
        if api == "externalcontact/list":
            userid = query.get("userid", "")
            with self._lock:
                count = self.customers.get(userid.lower())
            if count is None:
                return {"errcode": 84061, "errmsg": "not external contact"}
            return {"errcode": 0, "errmsg": "ok", "external_userid": customer_ids(userid, count)}
        if api == "user/get":
            key = query.get("userid", "").lower()
            with self._lock:
                serving = self.userids.get(key)
            # Known only by its customers (tests that set counts alone): an active member, as in the follow list.
            if serving is not None and key not in self.people.members:
                return {"errcode": 0, "errmsg": "ok", "userid": serving, "name": serving, "status": 1}
        answer = self.codes.api(api, body or {})
        if answer is None:
            answer = self.links.api(api, body or {})
        if answer is None:
            answer = self.people.api(api, query, body or {})
        return answer if answer is not None else {"errcode": 48002, "errmsg": "api forbidden"}

    def robot(self, kind: str, robot: str, query: dict[str, str], body: dict[str, Any]) -> tuple[int, dict]:
        """A robot's answer: (HTTP status, JSON body)."""
        fault = self._take_fault({"wecom": "webhook/send", "dingtalk": "robot/send"}.get(kind, kind))
        if fault and fault.http_status:
            return fault.http_status, {"error": "simulated"}
        if fault and fault.errcode is not None:
            return 200, _robot_error(kind, fault.errcode)
        secret = self.robot_secrets.get(robot)
        if kind == "dingtalk" and secret is not None:
            timestamp = query.get("timestamp", "")
            expected = base64.b64encode(hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(),
                                                 hashlib.sha256).digest()).decode()
            fresh = timestamp.isdigit() and abs(time.time() * 1000 - int(timestamp)) < 3600_000
            if not fresh or not hmac.compare_digest(expected, query.get("sign", "")):
                return 200, {"errcode": 310000, "errmsg": "sign not match"}
        if kind == "feishu" and secret is not None:
            timestamp = str(body.get("timestamp", ""))
            expected = base64.b64encode(hmac.new(f"{timestamp}\n{secret}".encode(), b"",
                                                 hashlib.sha256).digest()).decode()
            fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 3600
            if not fresh or not hmac.compare_digest(expected, str(body.get("sign", ""))):
                return 200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}
        if kind == "wecom" and robot == "badkey":
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
        if self._over_limit(self._robot_windows, f"{kind}:{robot}", self.robot_per_minute[kind]):
            return 200, _robot_error(kind, {"wecom": 45009, "dingtalk": 130101, "feishu": 11232}.get(kind, 429))
        text = _robot_text(kind, body)
        if text is None:
            return 200, _robot_error(kind, 40008)
        with self._lock:
            self.inbox.append(RobotMessage(kind, robot, text, time.time(), body))
        if kind == "feishu":
            return 200, {"code": 0, "msg": "success", "data": {}}
        return 200, {"errcode": 0, "errmsg": "ok"}


def _robot_error(kind: str, code: int) -> dict[str, Any]:
    if kind == "feishu":
        return {"code": code, "msg": f"simulated error {code}"}
    return {"errcode": code, "errmsg": f"simulated error {code}"}


def _robot_text(kind: str, body: dict[str, Any]) -> str | None:
    if kind == "feishu":
        return (body.get("content") or {}).get("text") if body.get("msg_type") == "text" else None
    if kind == "webhook":
        return body.get("text")
    if body.get("msgtype") == "text":
        return (body.get("text") or {}).get("content")
    if body.get("msgtype") == "markdown":
        return (body.get("markdown") or {}).get("content")
    return None


class _Handler(BaseHTTPRequestHandler):
    sim: WeComSimulator
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, a kept-alive client waits ~40 ms for each answer.
    disable_nagle_algorithm = True

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug(fmt, *args)

    def _send(self, status: int, payload: Any) -> None:
        self._send_bytes(status, json.dumps(payload, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _send_bytes(self, status: int, data: bytes, content_type: str, location: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(data)

    def _send_page(self, answer: tuple[int, str]) -> None:
        status, text = answer
        if status == 302:
            self._send_bytes(302, b"", "text/plain; charset=utf-8", location=text)
        else:
            self._send_bytes(status, text.encode(), "text/html; charset=utf-8")

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        body: dict[str, Any] = {}
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                self._send(200, {"errcode": 47001, "errmsg": "data format error"})
                return
        path = url.path
        sim = self.sim
        robot: tuple[str, str] | None = None
        if path == "/cgi-bin/webhook/send" and method == "POST":
            robot = ("wecom", query.get("key", ""))
        elif path == "/robot/send" and method == "POST":
            robot = ("dingtalk", query.get("access_token", ""))
        elif path.startswith("/open-apis/bot/v2/hook/") and method == "POST":
            robot = ("feishu", path.rsplit("/", 1)[-1])
        elif path.startswith("/hook/") and method == "POST":
            robot = ("webhook", path.rsplit("/", 1)[-1])
        if robot is not None:
            fault_api = {"wecom": "webhook/send", "dingtalk": "robot/send"}.get(robot[0], robot[0])
            with sim._lock:
                queue = sim.faults.get(fault_api)
                fault = queue[0] if queue else None
            if fault and fault.delay_seconds:
                sim._take_fault(fault_api)
                if fault.accept:
                    # Takes the message, then answers too late: the sender sees a timeout.
                    with sim._lock:
                        sim.inbox.append(RobotMessage(robot[0], robot[1], _robot_text(robot[0], body) or "",
                                                      time.time(), body))
                    time.sleep(fault.delay_seconds)
                    self._send(200, {"code": 0, "msg": "success"} if robot[0] == "feishu"
                               else {"errcode": 0, "errmsg": "ok"})
                    return
                # A robot that hangs: the sender times out; the message is not taken.
                time.sleep(fault.delay_seconds)
                self._send(504, {"error": "gateway timeout"})
                return
            status, payload = sim.robot(robot[0], robot[1], query, body)
            self._send(status, payload)
            return
        if path == "/_simulator/inbox":
            self._send(200, [{"kind": m.kind, "robot": m.robot, "text": m.text, "received_at": m.received_at}
                             for m in sim.messages()])
            return
        if path == "/_simulator/app_inbox":
            self._send(200, [{"userid": m.userid, "title": m.title, "description": m.description, "url": m.url,
                              "btntxt": m.btntxt, "at": m.at} for m in sim.app_messages()])
            return
        if method == "GET" and path in ("/wwlogin/sso/login", "/connect/oauth2/authorize"):
            self._send_page(sim.people.picker(query, qr_login=path == "/wwlogin/sso/login"))
            return
        if method == "GET" and path.startswith("/_simulator/qr/") and path.endswith(".png"):
            png = sim.codes.qr_png(path[len("/_simulator/qr/"):-len(".png")])
            if png is None:
                self._send(404, {"error": "unknown config_id"})
            else:
                self._send_bytes(200, png, "image/png")
            return
        if method == "GET" and path.startswith("/_simulator/ca/"):
            self._send_page(sim.links.open(path.rsplit("/", 1)[-1], query.get("customer_channel", "")))
            return
        if method == "GET" and path.startswith("/_simulator/contact/"):
            self._send_page(sim.codes.scan(path.rsplit("/", 1)[-1]))
            return
        if method == "GET" and path == "/_simulator/scan":
            self._send_page(sim.people.scan(query))
            return
        if path.startswith("/cgi-bin/"):
            api = path[len("/cgi-bin/"):]
            # Only calls with a JSON body pass it, so subclasses overriding api(api, query) keep working.
            answer = sim.api(api, query, body) if body else sim.api(api, query)
            with sim._lock:
                sim.answers[int(answer.get("errcode", 0))] += 1
            self._send(200, answer)
            return
        self._send(404, {"error": "not found"})

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")


def fetch_inbox(base_url: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    """What the simulator's robots received, newest first (the console shows it in demo mode)."""
    import httpx

    response = httpx.get(f"{base_url.rstrip('/')}/_simulator/inbox", timeout=timeout)
    response.raise_for_status()
    return sorted(response.json(), key=lambda m: m["received_at"], reverse=True)


def fetch_app_inbox(base_url: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    """The app messages members received, newest first (beside the robot inbox in demo mode)."""
    import httpx

    response = httpx.get(f"{base_url.rstrip('/')}/_simulator/app_inbox", timeout=timeout)
    response.raise_for_status()
    return sorted(response.json(), key=lambda m: m["at"], reverse=True)

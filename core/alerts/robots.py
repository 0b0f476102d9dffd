"""Sending one text to one group robot: the request each platform expects
(with DingTalk's and Feishu's signatures) and reading its answer."""

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from dataclasses import dataclass

import httpx

from base.errors import DomainError
from base.problems import Problem
from core.alerts.destinations import check_destination
from i18n import error_text

# Messages per minute each platform accepts from one robot (WECOM.md).
PER_MINUTE = {"wecom": 20, "dingtalk": 20, "feishu": 100, "webhook": 60}
# Feishu also caps a robot at 5 messages per second.
MIN_GAP_SECONDS = {"feishu": 0.2}
# The longest text each platform takes, in UTF-8 bytes (WeCom text ≤ 2,048).
MAX_BYTES = {"wecom": 2048, "dingtalk": 4000, "feishu": 4000, "webhook": 16000}


class RobotError(Exception):
    """The robot did not confirm the message; `problem` says why (kept for
    operators). `maybe_delivered` when the request went out but its answer was
    lost (a read timeout, a dropped connection): the robot may have taken it."""

    def __init__(self, key: str, /, *, maybe_delivered: bool = False, **params: str | int) -> None:
        # Raw text from the network or the robot is cut: it is only a hint for the operator.
        self.problem = Problem(key, {name: value[:300] if isinstance(value, str) else value
                                     for name, value in params.items()})
        self.maybe_delivered = maybe_delivered
        super().__init__(error_text(self.problem))


@dataclass(frozen=True)
class Target:
    kind: str
    url: str
    secret: str | None = None


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    # Feishu's key is timestamp + "\n" + secret, and the message is empty.
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def fit(text: str, kind: str) -> str:
    """Cut a text to what the platform takes, on a character boundary."""
    limit = MAX_BYTES[kind]
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit - 3].decode(errors="ignore") + "…"


def build_request(target: Target, text: str, now: float | None = None) -> tuple[str, dict[str, str], bytes]:
    now = time.time() if now is None else now
    text = fit(text, target.kind)
    url = target.url
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if target.kind == "feishu":
        body: dict = {"msg_type": "text", "content": {"text": text}}
        if target.secret:
            stamp = int(now)
            body.update(timestamp=str(stamp), sign=feishu_sign(target.secret, stamp))
    elif target.kind == "webhook":
        body = {"text": text, "source": "store-wecom-console"}
    else:
        body = {"msgtype": "text", "text": {"content": text}}
        if target.kind == "dingtalk" and target.secret:
            stamp = int(now * 1000)
            sign = urllib.parse.quote_plus(dingtalk_sign(target.secret, stamp))
            url = f"{url}{'&' if '?' in url else '?'}timestamp={stamp}&sign={sign}"
    data = json.dumps(body, ensure_ascii=False).encode()
    if target.kind == "webhook" and target.secret:
        headers["X-Console-Signature"] = "sha256=" + hmac.new(target.secret.encode(), data, hashlib.sha256).hexdigest()
    return url, headers, data


def send(target: Target, text: str, *, http: httpx.Client) -> None:
    """Raise RobotError unless the robot accepted the message. Every failure,
    whatever raised it (a malformed address, the network, a strange answer),
    becomes a RobotError with a reason an operator can act on."""
    try:
        check_destination(target.kind, target.url)
        url, headers, data = build_request(target, text)
        response = http.post(url, content=data, headers=headers, follow_redirects=False)
    except DomainError as exc:
        raise RobotError("alerts.robot.destination_refused", reason=error_text(exc)) from exc
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise RobotError("alerts.robot.bad_url", error=str(exc)) from exc
    except (httpx.ReadTimeout, httpx.RemoteProtocolError) as exc:
        # The request was sent; only the answer is missing.
        raise RobotError("alerts.robot.no_answer", error=_describe(exc), maybe_delivered=True) from exc
    except httpx.HTTPError as exc:
        raise RobotError("alerts.robot.network", error=_describe(exc)) from exc
    except Exception as exc:  # a robot must never stop the delivery of the others
        raise RobotError("alerts.robot.unexpected", error=_describe(exc)) from exc
    if response.status_code // 100 != 2:
        raise RobotError("alerts.robot.http_status", status=response.status_code)
    if target.kind == "webhook":
        return
    try:
        answer = response.json()
    except ValueError:
        raise RobotError("alerts.robot.not_json", status=response.status_code) from None
    if not isinstance(answer, dict):
        raise RobotError("alerts.robot.strange_answer", status=response.status_code, answer=str(answer)[:200])
    code = answer.get("code", answer.get("StatusCode")) if target.kind == "feishu" else answer.get("errcode")
    if code not in (0, "0"):
        message = answer.get("msg") or answer.get("errmsg") or answer.get("StatusMessage") or ""
        raise RobotError("alerts.robot.refused", code=str(code), message=str(message))


def _describe(exc: Exception) -> str:
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__

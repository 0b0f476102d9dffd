"""The simulator's side of WeCom's callback: an event encrypted and signed as WeCom
sends it, POSTed to the console and retried as WeCom retries."""

import logging
import secrets
import time

import httpx

from core.wecom.callback_crypto import CallbackCrypto

log = logging.getLogger("wecom.simulator")

CALLBACK_ATTEMPTS = 4   # the first post and WeCom's three retries


def post_event(*, crypto: CallbackCrypto, corp_id: str, agent_id: str, callback_url: str, message: str,
               what: str) -> int | None:
    """POSTs one event (`message`, the plain XML) to the console; the console's last HTTP
    status, None when it could not be reached. `what` names the event in the log."""
    encrypted = crypto.encrypt(message.encode())
    envelope = (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName>"
                f"<AgentID><![CDATA[{agent_id}]]></AgentID><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
    params = {"msg_signature": crypto.signature(timestamp, nonce, encrypted), "timestamp": timestamp, "nonce": nonce}
    answer: int | None = None
    for attempt in range(CALLBACK_ATTEMPTS):
        if attempt:
            time.sleep(min(2.0 ** attempt, 10.0))
        try:
            answer = httpx.post(callback_url, params=params, content=envelope.encode(),
                                headers={"Content-Type": "text/xml"}, timeout=5.0).status_code
        except httpx.HTTPError as exc:
            log.warning("%s not delivered: %s", what, exc)
            answer = None
            continue
        if answer == 200:
            break
    return answer

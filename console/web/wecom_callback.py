"""GET/POST /wecom/callback: WeCom's URL verification, encrypted
`change_external_contact` events (docs 91144, 96361) and `change_contact`
events about members who left or were disabled (`delete_user`, `update_user`).

GET answers the decrypted echostr and nothing else. POST answers 200 with an
empty body once the event is recorded or acted on (a retry of it is recognised
and changes nothing more); a forged or unreadable callback gets 403/400 and
changes nothing.
"""

import logging
import time
import xml.etree.ElementTree as ElementTree

import defusedxml.ElementTree as SafeElementTree
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from base.config import get_settings
from base.errors import ConcurrentEdit
from core.auth.permissions import system_actor
from core.directory import members
from core.funnel import contacts
from core.wecom.callback_crypto import CallbackCrypto, CallbackCryptoError
from core.wecom.identity import DISABLED, LEFT
from db.engine import session_scope

log = logging.getLogger("console.wecom_callback")

MAX_BODY_BYTES = 64 * 1024
CALLBACK_ACTOR = system_actor("wecom-callback")


def _crypto() -> CallbackCrypto | None:
    settings = get_settings()
    if not (settings.WECOM_CALLBACK_TOKEN and settings.WECOM_CALLBACK_AES_KEY and settings.WECOM_CORP_ID):
        return None
    return CallbackCrypto(settings.WECOM_CALLBACK_TOKEN, settings.WECOM_CALLBACK_AES_KEY, settings.WECOM_CORP_ID)


def _parse_xml(data: bytes) -> dict[str, str]:
    """The child elements of a flat WeCom XML message. The parser refuses any
    DTD, in whatever encoding the document declares, so no entity can expand."""
    try:
        root = SafeElementTree.fromstring(data, forbid_dtd=True)
    except (ElementTree.ParseError, ValueError) as exc:  # defusedxml's refusals are ValueErrors
        raise CallbackCryptoError("callback.bad_xml") from exc
    return {child.tag: (child.text or "").strip() for child in root}


# WeCom (企业微信) opened in 2016; its clock and ours may differ by a little.
_EARLIEST_CREATE_TIME = 1_451_606_400  # 2016-01-01
_CLOCK_SKEW_SECONDS = 86_400


def _create_time(text: str) -> int:
    """The event's CreateTime (seconds since the epoch); ValueError unless it
    is a time WeCom can have sent, so no date arithmetic overflows later."""
    value = int(text)
    if not _EARLIEST_CREATE_TIME <= value <= time.time() + _CLOCK_SKEW_SECONDS:
        raise ValueError(text)
    return value


def _not_configured() -> Response:
    return PlainTextResponse("callback not configured", status_code=503)


def _refused(exc: CallbackCryptoError, request: Request) -> Response:
    log.warning("wecom callback refused (%s) from %s", exc.key, request.client.host if request.client else "?")
    return PlainTextResponse("forbidden" if exc.key == "callback.bad_signature" else "bad request",
                             status_code=403 if exc.key == "callback.bad_signature" else 400)


async def verify_url(request: Request) -> Response:
    crypto = _crypto()
    if crypto is None:
        return _not_configured()
    q = request.query_params
    echostr = q.get("echostr", "")
    try:
        crypto.verify(q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""), echostr)
        return PlainTextResponse(crypto.decrypt(echostr).decode("utf-8"))
    except (CallbackCryptoError, UnicodeDecodeError) as exc:
        return _refused(exc if isinstance(exc, CallbackCryptoError) else CallbackCryptoError("callback.bad_xml"),
                        request)


def _record(change: contacts.ContactChange) -> bool:
    with session_scope(urgent=True) as session:
        return contacts.record_contact_change(session=session, actor=CALLBACK_ACTOR, change=change) is not None


def _member_status(message: dict[str, str]) -> int | None:
    """The status a `change_contact` event reports for a member who is gone; None for any other change."""
    if message.get("ChangeType") == "delete_user":
        return LEFT
    if message.get("ChangeType") == "update_user" and message.get("Status", "").isdigit():
        status = int(message["Status"])
        return status if status in (DISABLED, LEFT) else None
    return None


def _act_on_member(userid: str, status: int) -> bool:
    with session_scope(urgent=True) as session:
        return members.member_changed(session=session, actor=CALLBACK_ACTOR, userid=userid, status=status) is not None


async def _member_event(message: dict[str, str]) -> Response:
    status = _member_status(message)
    if status is None:
        return PlainTextResponse("")  # other member updates are not ours
    userid = message.get("UserID", "")
    if not userid:
        return PlainTextResponse("bad request", status_code=400)
    try:
        retired = await run_in_threadpool(_act_on_member, userid, status)
    except (SQLAlchemyError, ConcurrentEdit) as exc:
        # No 200: WeCom retries, and the retry acts once it goes through.
        log.error("wecom member change not applied: %s", exc)
        return PlainTextResponse("unavailable", status_code=503)
    log.info("wecom %s %s (status %s): %s", message.get("ChangeType"), userid, status,
             "account retired" if retired else "nothing to change")
    return PlainTextResponse("")


async def receive_event(request: Request) -> Response:
    crypto = _crypto()
    if crypto is None:
        return _not_configured()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return PlainTextResponse("body too large", status_code=413)
    q = request.query_params
    try:
        envelope = _parse_xml(bytes(body))
        encrypted = envelope.get("Encrypt", "")
        crypto.verify(q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""), encrypted)
        message = _parse_xml(crypto.decrypt(encrypted))
    except CallbackCryptoError as exc:
        return _refused(exc, request)
    if message.get("Event") == "change_contact":
        return await _member_event(message)
    if message.get("Event") != "change_external_contact" or message.get("ChangeType") not in contacts.CHANGE_TYPES:
        return PlainTextResponse("")  # other events are not ours; answering stops WeCom's retries
    try:
        change = contacts.ContactChange(
            corp_id=message.get("ToUserName", ""), change_type=message["ChangeType"],
            userid=message.get("UserID", ""), external_userid=message.get("ExternalUserID", ""),
            create_time=_create_time(message.get("CreateTime", "")), state=message.get("State", ""))
    except ValueError:
        return PlainTextResponse("bad request", status_code=400)
    if not change.userid or not change.external_userid:
        return PlainTextResponse("bad request", status_code=400)
    try:
        new = await run_in_threadpool(_record, change)
    except SQLAlchemyError as exc:
        # No 200: WeCom retries, and the retry is recorded once it goes through.
        log.error("wecom callback not recorded: %s", exc)
        return PlainTextResponse("unavailable", status_code=503)
    log.info("wecom %s %s → %s (%s)", change.change_type, change.userid, change.external_userid,
             "recorded" if new else "retry")
    return PlainTextResponse("")


ROUTES = [
    Route("/wecom/callback", verify_url, methods=["GET"]),
    Route("/wecom/callback", receive_event, methods=["POST"]),
]

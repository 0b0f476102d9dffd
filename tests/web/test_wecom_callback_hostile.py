"""/wecom/callback on crafted input that is correctly signed or not signed at
all: a CreateTime no WeCom event can carry is a 400 (not a 500 from date
arithmetic), and a DTD is refused in any encoding the XML declares."""

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from db.models import ContactEvent
from tests.web.test_wecom_callback import CORP, CRYPTO, client, contact_xml, count_of, deliver, history  # noqa: F401


@pytest.mark.parametrize("create_time", ["99999999999999999", "-1", "-99999999999999999", "1e9", ""])
def test_a_signed_event_with_an_impossible_create_time_is_a_400(client, session, history, create_time):  # noqa: F811
    inner = contact_xml("add_external_contact", "kf01", "wmT", datetime(2026, 11, 12, tzinfo=UTC))
    inner = inner.replace(f"<CreateTime>{int(datetime(2026, 11, 12, tzinfo=UTC).timestamp())}</CreateTime>".encode(),
                          f"<CreateTime>{create_time}</CreateTime>".encode())
    answer = deliver(client, inner)
    assert answer.status_code == 400
    assert session.exec(select(ContactEvent)).all() == []
    assert count_of(session, history["account"]) == 100


def test_a_signed_event_of_now_is_still_recorded(client, session, history):  # noqa: F811
    answer = deliver(client, contact_xml("add_external_contact", "kf01", "wmNow", datetime.now(UTC)))
    assert answer.status_code == 200
    assert [r.external_userid for r in session.exec(select(ContactEvent)).all()] == ["wmNow"]


ENTITY_ENVELOPE = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml [<!ENTITY a "{encrypted}">]>'
                   f"<xml><ToUserName>{CORP}</ToUserName><Encrypt>&a;</Encrypt></xml>")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8"])
def test_a_dtd_is_refused_in_any_encoding(client, session, history, encoding):  # noqa: F811
    """A byte search for "<!DOCTYPE" finds nothing in UTF-16; the parser now refuses it."""
    encrypted = CRYPTO.encrypt(contact_xml("add_external_contact", "kf01", "wmE", datetime(2026, 11, 12, tzinfo=UTC)))
    body = ENTITY_ENVELOPE.format(encrypted=encrypted)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + body.encode("utf-16-be")
    else:
        data = body.replace("UTF-16", encoding.upper()).encode(encoding)
    timestamp, nonce = "1763900000", "4242"
    answer = client.post("/wecom/callback", content=data, params={
        "msg_signature": CRYPTO.signature(timestamp, nonce, encrypted), "timestamp": timestamp, "nonce": nonce})
    assert answer.status_code == 400
    assert session.exec(select(ContactEvent)).all() == []


def test_a_dtd_inside_the_encrypted_message_is_refused(client, session, history):  # noqa: F811
    inner = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml [<!ENTITY u "kf01">]>'
             "<xml><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType>"
             "<UserID>&u;</UserID><ExternalUserID>wmI</ExternalUserID><CreateTime>1763900000</CreateTime></xml>")
    assert deliver(client, inner.encode("utf-16")).status_code == 400
    assert session.exec(select(ContactEvent)).all() == []

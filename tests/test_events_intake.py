"""POST /api/v1/events and the event-file import: every check, idempotency on
event_id (also across requests), size limits, and the answer's shape."""

import json
from datetime import date
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import Session, func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from console.web import events_api
from core import tracking
from core.errors import InvalidInput, PermissionDenied
from core.permissions import Actor, system_actor
from db.engine import session_scope
from db.models import FunnelActivity, Role, TrackingEvent
from tests.support.metrics_scenario import event

ADMIN = system_actor("test")
GOOD = event("g1", "order_result_view", "2026-11-20T10:00:00+08:00", "u1", "000101")


@pytest.fixture
def client(db_url):
    with TestClient(Starlette(routes=events_api.ROUTES)) as test_client:
        yield test_client


@pytest.fixture
def key(api_key):
    return api_key


def post(client, key, payload, raw: bytes | None = None):
    return client.post("/api/v1/events", content=raw if raw is not None else json.dumps(payload),
                       headers={"X-API-Key": key, "Content-Type": "application/json"})


def stored(session: Session) -> int:
    return session.exec(select(func.count()).select_from(TrackingEvent)).one()


BAD = [
    ("not an object", "events.not_object"),
    ({**GOOD, "event_id": ""}, "events.bad_event_id"),
    ({**GOOD, "event_id": "x" * 65}, "events.bad_event_id"),
    ({**GOOD, "event": "page_view"}, "events.unknown_name"),
    ({**GOOD, "occurred_at": "yesterday"}, "events.bad_time"),
    ({**GOOD, "occurred_at": 1763600000}, "events.bad_time"),
    ({**GOOD, "occurred_at": "2026-11-20T10:00:00"}, "events.no_offset"),
    ({**GOOD, "occurred_at": "2099-01-01T00:00:00+08:00"}, "events.future_time"),
    ({**GOOD, "occurred_at": "2019-01-01T00:00:00+08:00"}, "events.too_old"),
    ({**GOOD, "user_key": ""}, "events.bad_user_key"),
    ({**GOOD, "crm_store_id": 101}, "events.store_id_not_text"),
    ({**GOOD, "crm_store_id": "999999"}, "events.unknown_store"),
    ({**GOOD, "crm_store_id": "00101"}, "events.unknown_store"),
    ({**GOOD, "platform": "ios"}, "events.unknown_platform"),
    ({**GOOD, "order_id": 12345}, "events.bad_order_id"),
]


def test_each_bad_event_is_rejected_with_its_index_and_good_ones_kept(session, org):
    events = [GOOD] + [bad for bad, _ in BAD] + [{**GOOD, "event_id": "g2", "crm_store_id": "101"}]
    result = tracking.ingest_events(session=session, actor=ADMIN, events=events)
    session.commit()
    assert result.accepted == 2 and result.duplicates == 0
    assert [(index, key) for index, key, _ in result.rejected] == [(i + 1, key) for i, (_, key) in enumerate(BAD)]
    rows = session.exec(select(TrackingEvent).order_by(TrackingEvent.event_id)).all()
    assert [r.event_id for r in rows] == ["g1", "g2"]
    assert rows[0].day == tracking.number_of(date(2026, 11, 20))
    assert rows[0].store_id != rows[1].store_id  # "101" and "000101" are two stores


def test_resend_is_a_duplicate_not_a_new_event(session, org):
    first = tracking.ingest_events(session=session, actor=ADMIN, events=[GOOD, GOOD])
    again = tracking.ingest_events(session=session, actor=ADMIN, events=[{**GOOD, "user_key": "someone else"}])
    session.commit()
    assert (first.accepted, first.duplicates) == (1, 1)
    assert (again.accepted, again.duplicates) == (0, 1)
    assert stored(session) == 1
    assert session.exec(select(FunnelActivity.user_key)).all() == ["u1"]


def test_permission_and_batch_limit(session, org):
    with pytest.raises(PermissionDenied):
        tracking.ingest_events(session=session, actor=Actor(name="v", role=Role.viewer), events=[GOOD])
    with pytest.raises(InvalidInput):
        tracking.ingest_events(session=session, actor=ADMIN, events=[GOOD] * 1001)


def test_http_answer_shape_and_auth(client, session, org, key):
    assert client.post("/api/v1/events", content="[]").status_code == 401
    response = post(client, key, [GOOD, {**GOOD, "event": "nope", "event_id": "g9"}, GOOD])
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1 and body["duplicates"] == 1
    assert body["rejected"] == [{"index": 1, "error": "unknown event name 'nope'"}]
    assert post(client, key, [GOOD]).json() == {"accepted": 0, "duplicates": 1, "rejected": []}


def test_http_refuses_bad_bodies(client, session, org, key):
    assert post(client, key, None, raw=b"{not json").json()["error"] == "invalid_json"
    assert post(client, key, {"event_id": "x"}).json()["error"] == "expected_array"
    too_many = post(client, key, [GOOD] * 1001)
    assert too_many.status_code == 413 and too_many.json()["error"] == "batch_too_large"
    huge = post(client, key, None, raw=b"[" + b" " * events_api.MAX_BODY_BYTES + b"]")
    assert huge.status_code == 413 and huge.json()["error"] == "body_too_large"
    assert stored(session) == 0


def test_concurrent_resends_store_each_event_once(client, session, org, key):
    batch = [event(f"c{i}", "order_result_view", "2026-11-20T10:00:00+08:00", f"u{i % 7}", "000101")
             for i in range(300)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: post(client, key, batch).json(), range(4)))
    assert sum(a["accepted"] for a in answers) == 300
    assert sum(a["duplicates"] for a in answers) == 900
    assert stored(session) == 300


def test_event_file_import_csv_and_jsonl(session, org):
    csv_text = ("event_id,event,occurred_at,user_key,crm_store_id,platform,order_id\r\n"
                "f1,order_result_view,2026-11-20T10:00:00+08:00,u1,000101,app,=HYPERLINK()\r\n"
                "f2,entry_click,2026-11-20T10:00:05+08:00,u1,000101,app,\r\n"
                "f3,entry_click,2026-11-20T10:00:05+08:00,u1,123,app,\r\n"
                "f1,order_result_view,2026-11-20T10:00:00+08:00,u1,000101,app,\r\n")
    progress: list[tuple[int, int]] = []
    result = tracking.import_event_file(session_factory=session_scope, actor=ADMIN,
                                        data=csv_text.encode("utf-8-sig"), filename="events.csv",
                                        progress=lambda done, total: progress.append((done, total)))
    assert (result.lines, result.accepted, result.duplicates) == (4, 2, 1)
    assert [(p.line, p.key) for p in result.problems] == [(4, "events.unknown_store")]
    assert progress == [(4, 4)]
    lines = [json.dumps(GOOD), "{broken", json.dumps({**GOOD, "event_id": "j2", "platform": "h5"})]
    result = tracking.import_event_file(session_factory=session_scope, actor=ADMIN,
                                        data="\n".join(lines).encode(), filename="events.jsonl")
    assert (result.accepted, [(p.line, p.key) for p in result.problems]) == (2, [(2, "events.not_object")])
    with pytest.raises(InvalidInput) as exc:
        tracking.import_event_file(session_factory=session_scope, actor=ADMIN, data=b"event_id,event\nx,y\n",
                                   filename="e.csv")
    assert exc.value.key == "events.file_columns"
    with pytest.raises(InvalidInput):
        tracking.import_event_file(session_factory=session_scope, actor=ADMIN, data=b"x", filename="e.xlsx")

"""POST /api/v1/events and the event-file import: every check, idempotency on
event_id (also across requests), size limits, the answer's shape, branch
scope, and files read as a stream (CSV, JSON Lines, a JSON array).

Core tests tell intake what time it is (NOW); the HTTP route uses the clock,
so its events are dated an hour ago."""

import io
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from base.errors import InvalidInput, PermissionDenied
from console.web import events_api
from core.auth.permissions import Actor, system_actor
from core.funnel import event_files, intake
from db.engine import session_scope
from db.models import FunnelActivity, FunnelPending, Role, TrackingEvent
from tests.support.metrics_scenario import NOW, event

ADMIN = system_actor("test")
GOOD = event("g1", "order_result_view", "2026-11-20T10:00:00+08:00", "u1", "000101")
RECENT = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
LIVE = {**GOOD, "occurred_at": RECENT}


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
    ({**GOOD, "occurred_at": "2026-11-23T14:00:00+08:00"}, "events.future_time"),  # NOW + 2 h
    ({**GOOD, "occurred_at": "2024-11-01T00:00:00+08:00"}, "events.too_old"),
    ({**GOOD, "user_key": ""}, "events.bad_user_key"),
    ({**GOOD, "crm_store_id": 101}, "events.store_id_not_text"),
    ({**GOOD, "crm_store_id": "999999"}, "events.unknown_store"),
    ({**GOOD, "crm_store_id": "00101"}, "events.unknown_store"),
    ({**GOOD, "platform": "ios"}, "events.unknown_platform"),
    ({**GOOD, "order_id": 12345}, "events.bad_order_id"),
]


def test_each_bad_event_is_rejected_with_its_index_and_good_ones_kept(session, org):
    events = [GOOD] + [bad for bad, _ in BAD] + [{**GOOD, "event_id": "g2", "crm_store_id": "101"}]
    result = intake.ingest_events(session=session, actor=ADMIN, events=events, now=NOW)
    session.commit()
    assert result.accepted == 2 and result.duplicates == 0
    assert [(index, key) for index, key, _ in result.rejected] == [(i + 1, key) for i, (_, key) in enumerate(BAD)]
    rows = session.exec(select(TrackingEvent).order_by(TrackingEvent.event_id)).all()
    assert [r.event_id for r in rows] == ["g1", "g2"]
    assert rows[0].day == intake.number_of(date(2026, 11, 20))
    assert rows[0].store_id != rows[1].store_id  # "101" and "000101" are two stores


def test_resend_is_a_duplicate_not_a_new_event(session, org):
    first = intake.ingest_events(session=session, actor=ADMIN, events=[GOOD, GOOD], now=NOW)
    again = intake.ingest_events(session=session, actor=ADMIN, events=[{**GOOD, "user_key": "someone else"}],
                                   now=NOW)
    session.commit()
    assert (first.accepted, first.duplicates) == (1, 1)
    assert (again.accepted, again.duplicates) == (0, 1)
    assert stored(session) == 1
    assert session.exec(select(FunnelActivity.user_key)).all() == ["u1"]
    assert session.exec(select(FunnelPending.user_key)).all() == ["u1"]  # waiting for the roll-up, once


def test_a_scoped_operator_keeps_only_its_own_branchs_events(session, org):
    agency = Actor(name="agency", role=Role.hq_operator, user_id=7, branch_id=org["south"].id)
    result = intake.ingest_events(session=session, actor=agency, now=NOW, events=[
        {**GOOD, "event_id": "s1", "crm_store_id": "000201"}, {**GOOD, "event_id": "n1"}])
    session.commit()
    assert result.accepted == 1
    assert [(i, key) for i, key, _ in result.rejected] == [(1, "events.store_out_of_scope")]
    assert session.exec(select(TrackingEvent.event_id)).all() == ["s1"]


def test_permission_and_batch_limit(session, org):
    with pytest.raises(PermissionDenied):
        intake.ingest_events(session=session, actor=Actor(name="v", role=Role.viewer), events=[GOOD])
    with pytest.raises(InvalidInput):
        intake.ingest_events(session=session, actor=ADMIN, events=[GOOD] * 1001)


def test_http_answer_shape_and_auth(client, session, org, key):
    assert client.post("/api/v1/events", content="[]").status_code == 401
    response = post(client, key, [LIVE, {**LIVE, "event": "nope", "event_id": "g9"}, LIVE])
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1 and body["duplicates"] == 1
    assert body["rejected"] == [{"index": 1, "error": "unknown event name 'nope'"}]
    assert post(client, key, [LIVE]).json() == {"accepted": 0, "duplicates": 1, "rejected": []}


def test_http_refuses_bad_bodies(client, session, org, key):
    assert post(client, key, None, raw=b"{not json").json()["error"] == "invalid_json"
    assert post(client, key, {"event_id": "x"}).json()["error"] == "expected_array"
    too_many = post(client, key, [LIVE] * 1001)
    assert too_many.status_code == 413 and too_many.json()["error"] == "batch_too_large"
    huge = post(client, key, None, raw=b"[" + b" " * events_api.MAX_BODY_BYTES + b"]")
    assert huge.status_code == 413 and huge.json()["error"] == "body_too_large"
    assert stored(session) == 0


def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_all(client, session, org, key):
    """No Content-Length (Transfer-Encoding: chunked): counted while read."""
    sent = []

    def body():
        yield b"[" + json.dumps(LIVE).encode()
        for _ in range(64):
            sent.append(1)
            yield b"," + b" " * (64 * 1024)
        yield b"]"

    response = client.post("/api/v1/events", content=body(),
                           headers={"X-API-Key": key, "Content-Type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"
    assert stored(session) == 0


def test_concurrent_resends_store_each_event_once(client, session, org, key):
    batch = [event(f"c{i}", "order_result_view", RECENT, f"u{i % 7}", "000101") for i in range(300)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: post(client, key, batch).json(), range(4)))
    assert sum(a["accepted"] for a in answers) == 300
    assert sum(a["duplicates"] for a in answers) == 900
    assert stored(session) == 300


def import_file(data: bytes, filename: str, actor: Actor = ADMIN, progress=None) -> event_files.FileImportResult:
    return event_files.import_event_file(session_factory=session_scope, actor=actor, stream=io.BytesIO(data),
                                      filename=filename, progress=progress, now=NOW)


def test_event_file_import_csv_and_jsonl(session, org):
    csv_text = ("event_id,event,occurred_at,user_key,crm_store_id,platform,order_id\r\n"
                "f1,order_result_view,2026-11-20T10:00:00+08:00,u1,000101,app,=HYPERLINK()\r\n"
                "f2,entry_click,2026-11-20T10:00:05+08:00,u1,000101,app,\r\n"
                "f3,entry_click,2026-11-20T10:00:05+08:00,u1,123,app,\r\n"
                "f1,order_result_view,2026-11-20T10:00:00+08:00,u1,000101,app,\r\n")
    progress: list[tuple[int, float]] = []
    result = import_file(csv_text.encode("utf-8-sig"), "events.csv",
                         progress=lambda lines, share: progress.append((lines, share)))
    assert (result.lines, result.accepted, result.duplicates) == (4, 2, 1)
    assert [(p.line, p.key) for p in result.problems] == [(4, "events.unknown_store")]
    assert progress == [(4, 1.0)]
    lines = [json.dumps(GOOD), "{broken", json.dumps({**GOOD, "event_id": "j2", "platform": "h5"})]
    result = import_file("\n".join(lines).encode(), "events.jsonl")
    assert (result.accepted, [(p.line, p.key) for p in result.problems]) == (2, [(2, "events.not_object")])
    with pytest.raises(InvalidInput) as exc:
        import_file(b"event_id,event\nx,y\n", "e.csv")
    assert exc.value.key == "events.file_columns"
    with pytest.raises(InvalidInput):
        import_file(b"x", "e.xlsx")
    gbk = ("event_id,event,occurred_at,user_key,crm_store_id,platform\n"
           "gbk1,order_result_view,2026-11-20T10:00:00+08:00,顾客甲,000101,app\n").encode("gb18030")
    assert import_file(gbk, "导出.csv").accepted == 1
    assert "顾客甲" in session.exec(select(TrackingEvent.user_key)).all()


def test_a_json_array_file_is_read_element_by_element(session, org):
    elements = [{**GOOD, "event_id": f"a{n}", "user_key": f"u{n}"} for n in range(2500)]
    elements[1200] = "not an event"
    text = "[\n" + ",\n".join(json.dumps(e, ensure_ascii=False) for e in elements) + "\n]\n"
    progress: list[tuple[int, float]] = []
    result = import_file(text.encode(), "export.json", progress=lambda lines, share: progress.append((lines, share)))
    assert (result.lines, result.accepted) == (2500, 2499)
    # Element 1200 starts on line 1202 (the bracket has a line of its own).
    assert [(p.line, p.key) for p in result.problems] == [(1202, "events.not_object")]
    assert [lines for lines, _ in progress] == [1000, 2000, 2500]
    with pytest.raises(InvalidInput) as exc:
        import_file(b'[{"event_id": "x"},\n {"broken": }]', "bad.json")
    assert (exc.value.key, exc.value.params) == ("events.file_bad_json", {"line": 2})
    # A .json file of JSON Lines is still read line by line.
    assert import_file((json.dumps({**GOOD, "event_id": "l1"}) + "\n").encode(), "lines.json").accepted == 1


def test_a_file_is_imported_as_it_is_read(session, org):
    """The first batch is stored before the reader has reached the end of a
    large file, and progress grows with the share read."""
    header = "event_id,event,occurred_at,user_key,crm_store_id,platform\n"
    rows = "".join(f"b{n},order_result_view,2026-11-20T10:00:00+08:00,u{n % 50},000101,app,{'x' * 600}\n"
                   for n in range(6000))
    data = (header + rows).encode()
    stored_at_first_batch: list[int] = []
    shares: list[float] = []

    def progress(lines: int, share: float) -> None:
        if not stored_at_first_batch:
            with Session(session.get_bind()) as other:
                stored_at_first_batch.append(stored(other))
        shares.append(share)

    result = import_file(data, "big.csv", progress=progress)
    assert result.accepted == 6000 and stored_at_first_batch == [1000]
    assert shares[0] < 0.5 and shares == sorted(shares) and shares[-1] == 1.0

"""Crafted event input: the API answers 400 on bodies the JSON parser cannot
take (deep nesting, a number past Python's digit limit); an event file names
the line of a CSV that cannot be read, a line too long to be an event or a
JSON value nested too deep, and keeps only the first problems while counting
the rest."""

import io
import json

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from base.errors import InvalidInput
from console.web import events_api
from core.auth.permissions import system_actor
from core.funnel import event_files
from db.engine import session_scope
from i18n import error_text
from tests.support.metrics_scenario import NOW, event

ADMIN = system_actor("test")
GOOD = event("g1", "order_result_view", "2026-11-20T10:00:00+08:00", "u1", "000101")
HEADER = "event_id,event,occurred_at,user_key,crm_store_id,platform\n"


@pytest.fixture
def client(db_url):
    with TestClient(Starlette(routes=events_api.ROUTES)) as test_client:
        yield test_client


def post_raw(client, key, body: bytes):
    return client.post("/api/v1/events", content=body, headers={"X-API-Key": key,
                                                                "Content-Type": "application/json"})


@pytest.mark.parametrize("body", [b"[" * 100_000, b"9" * 5_000, b'[{"event_id": ' + b"1" * 5_000 + b"}]"],
                         ids=["deep-nesting", "5000-digit-number", "5000-digit-field"])
def test_the_api_answers_400_to_json_it_cannot_parse(client, session, org, api_key, body):
    answer = post_raw(client, api_key, body)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_json"


def import_file(data: bytes, filename: str) -> event_files.FileImportResult:
    return event_files.import_event_file(session_factory=session_scope, actor=ADMIN, stream=io.BytesIO(data),
                                         filename=filename, now=NOW)


def good_rows(first: int, count: int) -> str:
    return "".join(f"e{n},order_result_view,2026-11-20T10:00:00+08:00,u{n},000101,app\n"
                   for n in range(first, first + count))


def test_a_single_line_csv_of_megabytes_names_its_line(session, org):
    with pytest.raises(InvalidInput) as caught:
        import_file(b"event_id," + b"x" * (20 * 1024 * 1024), "one-line.csv")
    assert (caught.value.key, caught.value.params) == ("events.file_bad_csv", {"line": 1})
    assert "第 1 行" in error_text(caught.value)


def test_an_unclosed_quote_in_a_csv_names_the_line_and_keeps_the_batches_before(session, org):
    rows = good_rows(0, 1500) + 'q1,order_result_view,"2026-11-20\n' + good_rows(2000, 3000)
    with pytest.raises(InvalidInput) as caught:
        import_file((HEADER + rows).encode(), "quote.csv")
    assert caught.value.key == "events.file_bad_csv"
    assert 1502 <= caught.value.params["line"] <= 1502 + 3000
    assert import_file((HEADER + good_rows(0, 1000)).encode(), "again.csv").duplicates == 1000


def test_json_lines_nested_too_deep_or_too_long_are_named_rows(session, org):
    lines = [json.dumps(GOOD), "[" * 50_000, '{"a":' * 10_000 + "1" + "}" * 10_000,
             json.dumps({**GOOD, "event_id": "g2", "user_key": "x" * 100_000}),
             json.dumps({**GOOD, "event_id": "g3"})]
    result = import_file("\n".join(lines).encode(), "deep.jsonl")
    assert result.accepted == 2
    assert [(p.line, p.key) for p in result.problems] == [
        (2, "events.not_object"), (3, "events.not_object"), (4, "events.file_line_too_long")]


def test_a_json_array_nested_too_deep_stops_with_its_line(session, org):
    data = ("[\n" + json.dumps(GOOD) + ",\n" + "[" * 20_000 + "]" * 20_000 + "\n]").encode()
    with pytest.raises(InvalidInput) as caught:
        import_file(data, "deep.json")
    assert (caught.value.key, caught.value.params) == ("events.file_bad_json", {"line": 3})


def test_only_the_first_problems_are_kept_and_the_rest_counted(session, org):
    bad = "".join(f"b{n},page_view,2026-11-20T10:00:00+08:00,u{n},000101,app\n" for n in range(3500))
    result = import_file((HEADER + good_rows(0, 10) + bad).encode(), "bad.csv")
    assert (result.lines, result.accepted) == (3510, 10)
    assert len(result.problems) == event_files.MAX_PROBLEMS == 1000
    assert result.rejected == 3500 and result.more_problems == 2500
    assert result.problems[0].line == 12 and result.problems[-1].line == 1011

"""Event files (埋点文件): CSV, JSON Lines or a JSON array, read as a stream and
taken in 1,000 events per transaction with the same checks as the API."""

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from base.errors import InvalidInput
from core.auth.permissions import Actor, Capability, require
from core.funnel.intake import FILE_COLUMNS, MAX_BATCH, MAX_FILE_BYTES, ingest_events


@dataclass
class FileProblem:
    line: int
    key: str
    params: dict[str, Any]


# Text is read this many characters at a time; one JSON array element, and one
# line of a CSV or JSON Lines file, may not be longer than _MAX_ITEM_CHARS (an
# event is a few hundred), so no line of a crafted file is ever held whole.
_TEXT_CHUNK = 1 << 20
_MAX_ITEM_CHARS = 64 * 1024
# The problems kept to show; beyond them a file's problems are only counted.
MAX_PROBLEMS = 1000


class _Unreadable:
    """A line that cannot be an event; its problem is reported without intake."""

    __slots__ = ("key", "params")

    def __init__(self, key: str, **params: Any) -> None:
        self.key, self.params = key, params


def _size(stream: IO[bytes]) -> int:
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def _encoding(stream: IO[bytes]) -> str:
    """UTF-8 (with or without BOM) or GB18030, checked over the whole file
    without holding its text."""
    for encoding in ("utf-8-sig", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        stream.seek(0)
        try:
            while chunk := stream.read(_TEXT_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        stream.seek(0)
        return encoding
    raise InvalidInput("events.file_encoding")


def _first_byte(stream: IO[bytes]) -> bytes:
    """The first byte after a BOM and whitespace (ASCII in UTF-8 and GB18030)."""
    head = stream.read(3)
    if head != codecs.BOM_UTF8:
        stream.seek(0)
    while (byte := stream.read(1)) and byte in b" \t\r\n":
        continue
    stream.seek(0)
    return byte


def _lines(text: IO[str]) -> Iterator[tuple[int, str | None]]:
    """(line number, line) of the text; None for a line longer than
    _MAX_ITEM_CHARS, which is skipped without being held."""
    number = 0
    while line := text.readline(_MAX_ITEM_CHARS + 1):
        number += 1
        if len(line) <= _MAX_ITEM_CHARS or line.endswith(("\n", "\r")):
            yield number, line
            continue
        while (rest := text.readline(_TEXT_CHUNK)) and not rest.endswith(("\n", "\r")):
            continue
        yield number, None


def _json_lines(text: IO[str]) -> Iterator[tuple[int, Any]]:
    for number, line in _lines(text):
        if line is None:
            yield number, _Unreadable("events.file_line_too_long", limit=_MAX_ITEM_CHARS)
            continue
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except (json.JSONDecodeError, RecursionError):  # broken, or nested deeper than any event
            yield number, None


def _json_array(text: IO[str]) -> Iterator[tuple[int, Any]]:
    """The elements of a top-level JSON array, one at a time, each with the
    line it starts on. A syntax error stops the file: nothing after it can be
    read reliably."""
    decoder = json.JSONDecoder()
    buffer, pos, line, at_end = "", 0, 1, False

    def fill() -> bool:
        nonlocal buffer, pos, at_end
        chunk = "" if at_end else text.read(_TEXT_CHUNK)
        if not chunk:
            at_end = True
            return False
        buffer, pos = buffer[pos:] + chunk, 0
        return True

    def next_char() -> str:
        nonlocal pos, line
        while True:
            while pos < len(buffer) and buffer[pos] in " \t\r\n":
                line += buffer[pos] == "\n"
                pos += 1
            if pos < len(buffer):
                return buffer[pos]
            if not fill():
                return ""

    def broken() -> InvalidInput:
        return InvalidInput("events.file_bad_json", line=line)

    if next_char() != "[":
        raise broken()
    pos += 1
    first = True
    while True:
        char = next_char()
        if char == "]":
            pos += 1
            if next_char():
                raise broken()
            return
        if not first:
            if char != ",":
                raise broken()
            pos += 1
            next_char()
        first = False
        while True:
            try:
                value, end = decoder.raw_decode(buffer, pos)
            except RecursionError:  # nested deeper than any event
                raise broken() from None
            except json.JSONDecodeError:
                if len(buffer) - pos > _MAX_ITEM_CHARS or not fill():
                    raise broken() from None
                continue
            # A number or literal at the end of what was read may go on in the next chunk.
            if end == len(buffer) and fill():
                continue
            break
        yield line, value
        line += buffer.count("\n", pos, end)
        pos = end


def read_event_file(stream: IO[bytes], filename: str) -> Iterator[tuple[int, Any]]:
    """(line number, event) from a CSV (header row: FILE_COLUMNS), JSON Lines
    or JSON array file, as an existing tracking system exports them, read as a
    stream. A JSON line that does not parse yields None, which the checks
    reject. Every CSV value stays text."""
    if _size(stream) > MAX_FILE_BYTES:
        raise InvalidInput("events.file_too_large", limit_mb=MAX_FILE_BYTES // (1024 * 1024))
    name = filename.lower()
    if not name.endswith((".jsonl", ".ndjson", ".json", ".csv")):
        raise InvalidInput("events.file_type", filename=filename[:100])
    encoding = _encoding(stream)
    is_csv = name.endswith(".csv")
    is_array = not is_csv and _first_byte(stream) == b"["
    text = io.TextIOWrapper(stream, encoding=encoding, newline="" if is_csv else None)
    try:
        if not is_csv:
            yield from (_json_array if is_array else _json_lines)(text)
            return
        yield from _csv_events(text)
    finally:
        # The caller owns the stream: do not let the wrapper close it.
        text.detach()


def _csv_events(text: IO[str]) -> Iterator[tuple[int, Any]]:
    lines = _lines(text)
    physical = 0  # the line the reader has read up to

    def line_texts() -> Iterator[str]:
        nonlocal physical
        for physical, line in lines:
            if line is None:
                raise InvalidInput("events.file_bad_csv", line=physical)
            yield line

    reader = csv.DictReader(line_texts())
    try:
        headers = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in FILE_COLUMNS if c != "order_id" and c not in headers]
        if missing:
            raise InvalidInput("events.file_columns", columns=", ".join(missing))
        reader.fieldnames = headers
        for row in reader:
            yield physical, {key: (value if value is not None else "") for key, value in row.items()
                             if key in FILE_COLUMNS}
    except csv.Error:
        # A NUL byte, or a quote never closed (the rest reads as one cell): nothing after it reads reliably.
        raise InvalidInput("events.file_bad_csv", line=physical) from None


@dataclass
class FileImportResult:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    problems: list[FileProblem] = field(default_factory=list)  # the first MAX_PROBLEMS
    more_problems: int = 0  # those beyond, counted only

    @property
    def rejected(self) -> int:
        return len(self.problems) + self.more_problems

    def add_problem(self, problem: FileProblem) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.more_problems += 1


def import_event_file(*, session_factory: Callable[[], Any], actor: Actor, stream: IO[bytes], filename: str,
                      progress: Callable[[int, float], None] | None = None,
                      now: datetime | None = None) -> FileImportResult:
    """Import an event file as it is read, in batches of MAX_BATCH, each its own
    transaction (intake is idempotent, so an interrupted import is simply run
    again). `progress(lines read, share of the file read)` follows each batch.
    `session_factory` returns a context manager that commits on success."""
    require(actor, Capability.import_events)
    size = _size(stream) or 1
    result = FileImportResult()

    def flush(chunk: list[tuple[int, Any]]) -> None:
        readable = [(line, event) for line, event in chunk if not isinstance(event, _Unreadable)]
        problems = [FileProblem(line, event.key, event.params) for line, event in chunk
                    if isinstance(event, _Unreadable)]
        with session_factory() as session:
            batch = ingest_events(session=session, actor=actor, events=[event for _, event in readable],
                                  source="import", now=now)
        result.accepted += batch.accepted
        result.duplicates += batch.duplicates
        problems += [FileProblem(readable[index][0], key, params) for index, key, params in batch.rejected]
        for problem in sorted(problems, key=lambda p: p.line):
            result.add_problem(problem)
        if progress:
            progress(result.lines, min(1.0, stream.tell() / size))

    chunk: list[tuple[int, Any]] = []
    for item in read_event_file(stream, filename):
        chunk.append(item)
        result.lines += 1
        if len(chunk) == MAX_BATCH:
            flush(chunk)
            chunk = []
    if chunk:
        flush(chunk)
    if not result.lines:
        raise InvalidInput("events.file_empty")
    return result

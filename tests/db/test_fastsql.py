"""db.fastsql on its own, on SQLite and PostgreSQL: what goes in comes back
the same (times, flags, NULL, quotes, leading zeros), empty lists do nothing,
"one of" takes 50,000 values in one parameter, and ON CONFLICT returns only
the rows that were new."""

import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, func, select
from sqlalchemy.engine import Connection

from db.engine import get_engine
from db.fastsql import dialect_insert, execute_many, insert_many, insert_new, one_of

METADATA = MetaData()
SAMPLE = Table(
    "fastsql_sample", METADATA,
    Column("code", String(16), primary_key=True),  # a text id: leading zeros matter
    Column("at", DateTime),
    Column("shown", Boolean),
    Column("note", String(200)),
    Column("n", Integer),
)
AT = datetime(2026, 12, 2, 9, 30, 15, 123456)
AWKWARD = ["O'Brien", 'say "hi"', "50% off", "what?", "back\\slash", "%s and %(x)s", "门店'一'"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def connection(request: pytest.FixtureRequest, tmp_path) -> Iterator[Connection]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fastsql.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"fastsql_{uuid.uuid4().hex[:8]}")
    engine = get_engine(url)
    METADATA.create_all(engine)
    with engine.connect() as connection:
        yield connection
        connection.rollback()


def row(code: str, *, at: datetime | None = AT, shown: bool | None = True, note: str | None = "n",
        n: int | None = 1) -> dict:
    return {"code": code, "at": at, "shown": shown, "note": note, "n": n}


def stored(connection: Connection) -> dict[str, tuple]:
    rows = connection.execute(select(SAMPLE).order_by(SAMPLE.c.code)).all()
    return {r.code: (r.at, r.shown, r.note, r.n) for r in rows}


def test_insert_many_keeps_times_flags_nulls_quotes_and_leading_zeros(connection):
    rows = [row("007", shown=True), row("7", shown=False, at=datetime(2020, 1, 1)),
            row("0", at=None, shown=None, note=None, n=None)]
    rows += [row(f"q{i}", note=text) for i, text in enumerate(AWKWARD)]
    insert_many(connection, SAMPLE, rows)

    assert stored(connection) == {r["code"]: (r["at"], r["shown"], r["note"], r["n"]) for r in rows}


def test_insert_many_of_nothing_writes_nothing(connection):
    insert_many(connection, SAMPLE, [])

    assert stored(connection) == {}


def test_insert_new_returns_only_the_rows_that_were_new(connection):
    insert_many(connection, SAMPLE, [row("001", note="first"), row("002", note="first")])

    new = insert_new(connection, SAMPLE, [row("002", note="again"), row("003", note="third"), row("0003")],
                     conflict=["code"], returning=["code", "note"])

    assert sorted(new) == [("0003", "n"), ("003", "third")]
    assert {code: values[2] for code, values in stored(connection).items()} == {
        "001": "first", "002": "first", "003": "third", "0003": "n"}


def test_insert_new_keeps_times_flags_nulls_and_quotes(connection):
    rows = [row("a", shown=False), row("b", at=None, shown=None, note=None, n=None)]
    rows += [row(f"q{i}", note=text) for i, text in enumerate(AWKWARD)]

    new = insert_new(connection, SAMPLE, rows, conflict=["code"], returning=["code"])

    assert sorted(new) == sorted((r["code"],) for r in rows)
    assert stored(connection) == {r["code"]: (r["at"], r["shown"], r["note"], r["n"]) for r in rows}


def test_insert_new_of_more_rows_than_one_statement_takes(connection):
    # 5 columns × 20,000 rows: 100,000 parameters, over SQLite's 32,766 per statement.
    insert_many(connection, SAMPLE, [row(f"{i:06d}") for i in range(0, 20_000, 2)])

    new = insert_new(connection, SAMPLE, [row(f"{i:06d}") for i in range(20_000)], conflict=["code"],
                     returning=["code"])

    assert sorted(new) == [(f"{i:06d}",) for i in range(1, 20_000, 2)]
    assert connection.execute(select(func.count()).select_from(SAMPLE)).scalar() == 20_000


def test_insert_new_of_nothing_returns_nothing(connection):
    assert insert_new(connection, SAMPLE, [], conflict=["code"], returning=["code"]) == []


def test_execute_many_runs_question_mark_sql_once_per_row(connection):
    insert_many(connection, SAMPLE, [row("01", note="keep"), row("02", note="skip me"), row("03", note="keep")])

    # A literal % in the SQL stays a literal for psycopg too.
    execute_many(connection, "UPDATE fastsql_sample SET note = ?, n = ? WHERE code = ? AND note NOT LIKE '%skip%'",
                 [(text, i, code) for i, (code, text) in enumerate([("01", AWKWARD[0]), ("02", "x"),
                                                                    ("03", AWKWARD[2])])])

    assert {code: (values[2], values[3]) for code, values in stored(connection).items()} == {
        "01": (AWKWARD[0], 0), "02": ("skip me", 1), "03": (AWKWARD[2], 2)}


def test_execute_many_of_nothing_runs_nothing(connection):
    execute_many(connection, "DELETE FROM fastsql_sample WHERE code = ?", [])

    assert stored(connection) == {}


def codes_where(connection: Connection, condition) -> list[str]:
    return list(connection.execute(select(SAMPLE.c.code).where(condition).order_by(SAMPLE.c.code)).scalars())


def test_one_of_matches_text_exactly_leading_zeros_and_quotes_included(connection):
    insert_many(connection, SAMPLE, [row("007"), row("7"), row("0070"), row("it's"), row('"q"')])

    assert codes_where(connection, one_of(connection, SAMPLE.c.code, ["007", "it's", '"q"', "missing"])) == [
        '"q"', "007", "it's"]


def test_one_of_integers_and_an_expression(connection):
    insert_many(connection, SAMPLE, [row("a", n=1, note="Mixed"), row("b", n=2, note="OTHER"), row("c", n=3)])

    assert codes_where(connection, one_of(connection, SAMPLE.c.n, [1, 3])) == ["a", "c"]
    assert codes_where(connection, one_of(connection, func.lower(SAMPLE.c.note), ["mixed", "other"])) == ["a", "b"]


def test_one_of_nothing_matches_nothing(connection):
    insert_many(connection, SAMPLE, [row("a"), row("")])

    assert codes_where(connection, one_of(connection, SAMPLE.c.code, [])) == []
    assert codes_where(connection, one_of(connection, SAMPLE.c.n, [])) == []


def test_one_of_50000_values_in_one_parameter(connection):
    insert_many(connection, SAMPLE, [row(f"{i:07d}", n=i) for i in range(0, 60_000, 2)])
    wanted = [f"{i:07d}" for i in range(50_000)]

    condition = one_of(connection, SAMPLE.c.code, wanted)

    assert len(select(SAMPLE.c.code).where(condition).compile(connection).params) == 1
    assert codes_where(connection, condition) == wanted[::2]
    assert len(codes_where(connection, one_of(connection, SAMPLE.c.n, list(range(50_000))))) == 25_000


def test_dialect_insert_takes_on_conflict(connection):
    insert_many(connection, SAMPLE, [row("x", note="old", n=1)])

    connection.execute(dialect_insert(connection, SAMPLE).values(row("x", note="ignored"))
                       .on_conflict_do_nothing(index_elements=[SAMPLE.c.code]))
    assert stored(connection)["x"][2] == "old"
    statement = dialect_insert(connection, SAMPLE).values(row("x", note="new", n=5))
    connection.execute(statement.on_conflict_do_update(index_elements=[SAMPLE.c.code],
                                                       set_={"note": statement.excluded.note}))
    assert stored(connection)["x"][2:] == ("new", 1)

"""SQL for thousands of rows at a time, on SQLite and PostgreSQL alike.

Use it where one request or job writes or looks up thousands of rows (a
50,000-row binding sheet, event intake, the funnel roll-up). There
SQLAlchemy's per-row parameter handling, and the rendering of one bound
parameter per value of an IN list, cost more than the database's own work;
everything here goes through the driver with each statement built once.
Anywhere else the ordinary ORM or Core statement is clearer and fast enough.

Every function takes the caller's Connection (`session.connection()`) and
runs in its transaction. Column defaults are not applied: callers pass every
NOT NULL column.
"""

import json
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Dialect,
    String,
    Table,
    any_,
    bindparam,
    false,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import SQLColumnExpression

# SQLite's default limit on parameters in one statement (PostgreSQL's is 65,535).
_MAX_PARAMETERS = 32_766


def insert_many(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys) into `table` by the driver's executemany."""
    if not rows:
        return
    keys = list(rows[0])
    sql = f"INSERT INTO {_name(connection, table.name)} ({_names(connection, keys)}) VALUES {_group(connection, keys)}"
    connection.exec_driver_sql(sql, _driver_rows(connection.dialect, table, keys, rows))


def insert_new(connection: Connection, table: Table, rows: list[dict[str, Any]], *, conflict: Sequence[str],
               returning: Sequence[str]) -> list[tuple]:
    """INSERT … ON CONFLICT (conflict) DO NOTHING RETURNING (returning) of
    `rows` (dicts with the same keys): the `returning` columns of the rows
    that were new, as the driver gives them. Safe when two requests race."""
    if not rows:
        return []
    keys = list(rows[0])
    group = _group(connection, keys)
    head = f"INSERT INTO {_name(connection, table.name)} ({_names(connection, keys)}) VALUES "
    tail = f" ON CONFLICT ({_names(connection, conflict)}) DO NOTHING RETURNING {_names(connection, returning)}"
    params = _driver_rows(connection.dialect, table, keys, rows)
    # One parameter per cell in a multi-row VALUES: the rows go in as many
    # statements as the parameter limit needs. (executemany cannot RETURNING
    # in bulk: SQLite runs it row by row.)
    per_statement = _MAX_PARAMETERS // len(keys)
    new: list[tuple] = []
    for start in range(0, len(params), per_statement):
        part = params[start:start + per_statement]
        sql = head + ", ".join([group] * len(part)) + tail
        new.extend(tuple(row) for row in connection.exec_driver_sql(sql, tuple(v for row in part for v in row)))
    return new


def execute_many(connection: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run `sql`, written with `?` placeholders, once per row by the driver's
    executemany. Values go to the driver as they are: text, numbers and None
    (no type processing, unlike insert_many)."""
    if rows:
        connection.exec_driver_sql(_positional(connection, sql), list(rows))


def one_of(connection: Connection, column: SQLColumnExpression[Any], values: Sequence[str] | Sequence[int]
           ) -> ColumnElement[bool]:
    """`column IN values` (all text or all integers) with all the values in
    one bound parameter: a JSON list read by `json_each` on SQLite, an array
    (`= ANY`) on PostgreSQL. Rendering and binding a 50,000-value IN list
    costs more than the query, and SQLite refuses over 32,766 parameters."""
    if not values:
        return false()
    if connection.dialect.name == "postgresql":
        element = BigInteger() if isinstance(values[0], int) else String()
        return column == any_(bindparam(None, list(values), type_=ARRAY(element)))
    return column.in_(select(literal_column("value"))
                      .select_from(func.json_each(bindparam(None, json.dumps(list(values))))))


def dialect_insert(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT of the connection's dialect, which can take ON CONFLICT … DO NOTHING / DO UPDATE."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# Positional placeholders by the driver's paramstyle (psycopg: %s; sqlite3: ?).
_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def _mark(connection: Connection) -> str:
    return _MARKS[connection.dialect.paramstyle]


def _positional(connection: Connection, sql: str) -> str:
    """SQL written with `?` placeholders in the driver's own style."""
    mark = _mark(connection)
    return sql if mark == "?" else sql.replace("%", "%%").replace("?", mark)


def _group(connection: Connection, keys: Sequence[str]) -> str:
    return "(" + ", ".join([_mark(connection)] * len(keys)) + ")"


def _name(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def _names(connection: Connection, names: Sequence[str]) -> str:
    return ", ".join(_name(connection, name) for name in names)


def _driver_rows(dialect: Dialect, table: Table, keys: list[str], rows: list[dict[str, Any]]) -> list[tuple]:
    """The rows as driver parameters: each column's bind processor (datetimes
    and booleans on SQLite) run only where the dialect has one."""
    processors = [table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in keys]
    processed = [(i, _reusing_last(p)) for i, p in enumerate(processors) if p is not None]
    values: Callable[[dict[str, Any]], tuple] = itemgetter(*keys) if len(keys) > 1 else lambda row: (row[keys[0]],)
    if not processed:
        return [values(row) for row in rows]
    params = []
    for row in rows:
        cells = list(values(row))
        for i, process in processed:
            cells[i] = process(cells[i])
        params.append(tuple(cells))
    return params


def _reusing_last(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A bind processor that reuses its result while it is given the same
    object: a bulk insert stamps every row with one timestamp, formatted once."""
    last_value: Any = object()
    last_result: Any = None

    def run(value: Any) -> Any:
        nonlocal last_value, last_result
        if value is not last_value:
            last_value, last_result = value, process(value)
        return last_result

    return run

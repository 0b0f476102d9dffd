"""Many-row INSERTs straight to the driver's executemany.

At 50,000 rows SQLAlchemy's per-row parameter processing costs more than the
INSERT itself; here each column's bind processor (datetimes and booleans on
SQLite) runs only where one exists, and the statement is built once. Column
defaults are not applied: callers pass every NOT NULL column.
"""

from collections.abc import Sequence
from operator import itemgetter

from sqlalchemy import Table
from sqlalchemy.engine import Connection
from sqlmodel import Session

_PLACEHOLDERS = {"qmark": lambda k: "?", "format": lambda k: "%s", "numeric": None,
                 "named": lambda k: f":{k}", "pyformat": lambda k: f"%({k})s"}


def insert_many(connection: Connection, table: Table, rows: list[dict]) -> None:
    """Insert `rows` (dicts with the same keys) into `table` in the caller's transaction."""
    if not rows:
        return
    dialect = connection.dialect
    keys = list(rows[0])
    placeholder = _PLACEHOLDERS[dialect.paramstyle]
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(k) for k in keys)}) "
           f"VALUES ({', '.join(placeholder(k) for k in keys)})")
    processors = [table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in keys]
    processed = [(i, _reusing_last(p)) for i, p in enumerate(processors) if p is not None]
    values = itemgetter(*keys) if len(keys) > 1 else lambda row: (row[keys[0]],)
    if processed:
        params = []
        for row in rows:
            cells = list(values(row))
            for i, process in processed:
                cells[i] = process(cells[i])
            params.append(tuple(cells))
    else:
        params = [values(row) for row in rows]
    if dialect.paramstyle not in ("qmark", "format"):
        params = [dict(zip(keys, row)) for row in params]
    connection.exec_driver_sql(sql, params)


def _reusing_last(process):
    """A bind processor that reuses its result while it is given the same
    object: a bulk insert stamps every row with one timestamp, formatted once."""
    last_value, last_result = object(), None

    def run(value):
        nonlocal last_value, last_result
        if value is not last_value:
            last_value, last_result = value, process(value)
        return last_result

    return run



def dialect_insert(session: Session, table: Table):
    """INSERT with ON CONFLICT for the engine's dialect (SQLite or PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def driver_executemany(session: Session, sql: str, rows: list[tuple]) -> None:
    """Many rows straight through the driver: SQLAlchemy's per-row parameter
    handling costs more than the database at intake and roll-up volumes.
    `sql` uses ? placeholders (made %s for psycopg)."""
    if rows:
        connection = session.connection()
        connection.exec_driver_sql(sql if connection.dialect.name == "sqlite" else sql.replace("?", "%s"), rows)


def insert_new(session: Session, table: str, columns: Sequence[str], rows: list[tuple], conflict: str,
               returning: str) -> list[tuple]:
    """INSERT … ON CONFLICT (conflict) DO NOTHING RETURNING (returning) of many
    rows, a thousand per statement, through the driver: the rows that were new."""
    connection = session.connection()
    mark = "?" if connection.dialect.name == "sqlite" else "%s"
    group = "(" + ", ".join([mark] * len(columns)) + ")"
    new: list[tuple] = []
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        part = rows[start:start + _ROWS_PER_INSERT]
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([group] * len(part))} "
               f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {returning}")
        new.extend(tuple(row) for row in connection.exec_driver_sql(sql, tuple(v for row in part for v in row)))
    return new


# Under SQLite's 32,766 parameters per statement with the widest row (11 columns).
_ROWS_PER_INSERT = 1000

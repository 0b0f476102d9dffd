"""Many-row INSERTs straight to the driver's executemany.

At 50,000 rows SQLAlchemy's per-row parameter processing costs more than the
INSERT itself; here each column's bind processor (datetimes and booleans on
SQLite) runs only where one exists, and the statement is built once. Column
defaults are not applied: callers pass every NOT NULL column.
"""

from operator import itemgetter

from sqlalchemy import Table
from sqlalchemy.engine import Connection

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

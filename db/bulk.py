"""Many-row INSERTs straight to the driver's executemany.

At 50,000 rows SQLAlchemy's per-row parameter processing costs more than the
INSERT itself; here each column's bind processor (datetimes and booleans on
SQLite) runs only where one exists, and the statement is built once. Column
defaults are not applied: callers pass every NOT NULL column.
"""

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
    if dialect.paramstyle in ("qmark", "format"):
        params = [tuple(row[k] if p is None else p(row[k]) for k, p in zip(keys, processors)) for row in rows]
    else:
        params = [{k: row[k] if p is None else p(row[k]) for k, p in zip(keys, processors)} for row in rows]
    connection.exec_driver_sql(sql, params)

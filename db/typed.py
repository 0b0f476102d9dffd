"""Typed forms of what SQLModel leaves untyped, so that mypy checks the code
around them: a model's Core table, and a select of many columns."""

from typing import Any

from sqlalchemy import Table, inspect
from sqlmodel import SQLModel
from sqlmodel.sql.expression import Select


def table_of(model: type[SQLModel]) -> Table:
    """The `Table` of a `table=True` model, for Core statements and the bulk SQL in `db.fastsql`."""
    table = inspect(model).local_table
    assert isinstance(table, Table), f"{model.__name__} is not a table model"
    return table


def select_columns(*columns: Any) -> Select[*tuple[Any, ...]]:
    """`sqlmodel.select` of two or more columns, for the selects its typing does not
    cover: more than four columns, or columns chosen at run time."""
    assert len(columns) > 1, "one column: use sqlmodel.select, which returns scalars"
    return Select(*columns)

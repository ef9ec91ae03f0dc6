"""Helpers shared by the repositories: their base, reads and writes inside the error
boundary, the 'not given' marker, and JSON argument checks."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any, Final

from sqlalchemy import Executable, Row, Table, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from quantflow_async.errors import InvalidValue, NotFound, QuantFlowError, StorageError
from quantflow_async.store.column_types import EncodedJson
from quantflow_async.store.driver_errors import storage_error, translated_errors
from quantflow_async.store.engine import read_transaction, write_transaction
from quantflow_async.validation import to_id, to_json_text

# storage_error is re-exported for callers that imported it from here.
__all__ = [
    "UNSET",
    "Repository",
    "fetch_all",
    "fetch_one",
    "insert_returning",
    "json_document",
    "json_value",
    "optional_json_document",
    "storage_error",
    "write_returning",
]


class Repository:
    """Reads and writes of a table, each on a connection of `engine` of its own."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _row_by_id(self, table: Table, row_id: int, noun: str) -> Row[Any]:
        """The row of `table` whose id is `row_id` (checked first), or NotFound naming `noun`."""
        row_id = to_id(row_id, f"{noun}_id")
        query = select(table).where(table.c.id == row_id)
        row = await fetch_one(self._engine, query, f"reading {noun} {row_id}")
        if row is None:
            raise NotFound(noun, row_id)
        return row


class _Unset(Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET
"""Marks an update argument that was not given (None means 'set to NULL')."""


def json_document(value: object, field: str) -> dict[str, Any]:
    """A JSON object as stored: validated, and a copy the caller can no longer change."""
    if not isinstance(value, Mapping):
        raise InvalidValue(field, f"expected a dict, got {type(value).__name__}")
    return json.loads(to_json_text(value, field))  # type: ignore[no-any-return]


def optional_json_document(value: object, field: str) -> dict[str, Any] | None:
    return None if value is None else json_document(value, field)


def json_value(value: object, field: str) -> ColumnElement[Any] | None:
    """A JSON object (or None) to store, validated and encoded once (`to_json_text`) and
    bound as that text: for a write that does not give the document back."""
    if value is None:
        return None
    return type_coerce(to_json_text(value, field), EncodedJson())


async def fetch_one(engine: AsyncEngine, query: Executable, action: str) -> Row[Any] | None:
    """The one row `query` finds, or None; read in its own read transaction."""
    with translated_errors(action):
        async with read_transaction(engine) as conn:
            return (await conn.execute(query)).one_or_none()


async def fetch_all(engine: AsyncEngine, query: Executable, action: str) -> Sequence[Row[Any]]:
    with translated_errors(action):
        async with read_transaction(engine) as conn:
            return (await conn.execute(query)).all()


async def insert_returning(
    engine: AsyncEngine,
    statement: Executable,
    action: str,
    *,
    row_error: Callable[[BaseException], QuantFlowError],
) -> Row[Any]:
    """Run an INSERT ... RETURNING of one row in a write transaction; the row stored."""
    row = await write_returning(engine, statement, action, row_error=row_error)
    if row is None:  # an insert that raised nothing stored its row
        raise StorageError(f"{action}: the database stored no row")
    return row


async def write_returning(
    engine: AsyncEngine,
    statement: Executable,
    action: str,
    *,
    row_error: Callable[[BaseException], QuantFlowError] | None = None,
) -> Row[Any] | None:
    """Run an INSERT/UPDATE ... RETURNING in a write transaction; the row, or None if none
    matched. `row_error` makes the error for data that broke a rule (see translated_errors)."""
    with translated_errors(action, row_error=row_error):
        async with write_transaction(engine) as conn:
            return (await conn.execute(statement)).one_or_none()

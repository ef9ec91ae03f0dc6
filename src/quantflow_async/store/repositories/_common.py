"""Helpers shared by the repositories: argument checks and driver-error translation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from typing import Any, Final, NoReturn

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from quantflow_async.errors import InvalidValue, StorageError, StorageUnavailable
from quantflow_async.store.driver_errors import Fault, classify, describe
from quantflow_async.validation import to_json_text


class _Unset(Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET
"""Marks an update argument that was not given (None means 'set to NULL')."""

DRIVER_ERRORS: Final = (SQLAlchemyError, OSError)
"""What a database call can raise besides our own errors: SQLAlchemy wraps the drivers'
errors, but a refused or dropped network connection can surface as a plain OSError."""


def json_document(value: object, field: str) -> dict[str, Any]:
    """A JSON object as stored: validated, and a copy the caller can no longer change."""
    if not isinstance(value, Mapping):
        raise InvalidValue(field, f"expected a dict, got {type(value).__name__}")
    return json.loads(to_json_text(value, field))  # type: ignore[no-any-return]


def optional_json_document(value: object, field: str) -> dict[str, Any] | None:
    return None if value is None else json_document(value, field)


def storage_error(exc: BaseException, action: str) -> NoReturn:
    """Raise the library's error for a driver failure that is not the caller's input."""
    message = f"{action} failed: {describe(exc)}"
    if _is_missing_table(exc):
        raise StorageError(
            f"{message}; the schema is missing: run `quantflow migrate` or `await db.migrate()`"
        ) from exc
    if classify(exc) is Fault.FATAL and not _is_programming_error(exc):
        raise StorageUnavailable(message) from exc
    raise StorageError(message) from exc


def _is_missing_table(exc: BaseException) -> bool:
    text = describe(exc)
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def _is_programming_error(exc: BaseException) -> bool:
    return isinstance(exc, SQLAlchemyError) and not isinstance(exc, DBAPIError)

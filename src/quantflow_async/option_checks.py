"""Checks of configuration values (the writer's, the database's, the venue's retries): each
raises InvalidValue naming the option and what it expected."""

from __future__ import annotations

from quantflow_async.errors import InvalidValue


def check_int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
    """An int (not a bool) from `minimum` up to `maximum`, if given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(name, f"expected an int, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise InvalidValue(name, f"must be {bound}, got {value}")


def check_amount(name: str, value: object, unit: str) -> None:
    """A finite int or float >= 0 (not a bool), a number of `unit`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(name, f"expected a number of {unit}, got {type(value).__name__}")
    if not 0 <= value < float("inf"):
        raise InvalidValue(name, f"must be >= 0 {unit} and finite, got {value}")


def check_bool(name: str, value: object) -> None:
    """True or False, not a truthy value."""
    if not isinstance(value, bool):
        raise InvalidValue(name, f"expected True or False, got {value!r}")

"""Checks that turn caller values into storable ones, or raise InvalidValue naming the field.

Shared by `Fill` and the repositories, so a value is judged the same way wherever it enters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Final

from quantflow_async.errors import InvalidValue

MAX_SIGNIFICANT_DIGITS: Final = 38
MAX_FRACTION_DIGITS: Final = 18
MAX_SYMBOL_LENGTH: Final = 64
MAX_LABEL_LENGTH: Final = 128
MAX_JSON_BYTES: Final = 64 * 1024
MAX_ID: Final = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def to_decimal(value: object, field: str) -> Decimal:
    """`value` as an exact Decimal, or InvalidValue naming `field`.

    str and int are taken as written; a float goes through its shortest repr (0.1 -> 0.1),
    never through its binary expansion. bool, NaN and infinities are refused, and so are
    values beyond 38 significant digits or 18 digits after the point.
    """
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool):
        raise InvalidValue(field, f"expected a number, got the bool {value!r}")
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValue(field, f"must be a finite number, got {value!r}")
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidValue(field, f"is not a decimal number: {_preview(value)}") from None
    else:
        kind = type(value).__name__
        raise InvalidValue(field, f"expected Decimal, int, str or float, got {kind}")
    if not number.is_finite():
        raise InvalidValue(field, f"must be a finite number, got {number}")
    _check_digits(number, field)
    return number


def _check_digits(number: Decimal, field: str) -> None:
    if number.is_zero():
        return
    _, digits, exponent = number.normalize().as_tuple()
    exponent = int(exponent)  # finite numbers only (checked above), so never 'n' or 'F'
    if -exponent > MAX_FRACTION_DIGITS:
        raise InvalidValue(
            field, f"has more than {MAX_FRACTION_DIGITS} digits after the point: {number}"
        )
    if len(digits) + max(exponent, 0) > MAX_SIGNIFICANT_DIGITS:
        raise InvalidValue(field, f"has more than {MAX_SIGNIFICANT_DIGITS} digits: {number}")


def decimal_text(number: Decimal) -> str:
    """Plain positional text of a Decimal (no exponent), which reads back equal."""
    return format(number, "f")


def to_utc(value: object, field: str) -> datetime:
    """An aware datetime converted to UTC; naive datetimes are refused, not guessed."""
    if not isinstance(value, datetime):
        raise InvalidValue(field, f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue(
            field, f"must be timezone-aware (got naive {value.isoformat()}); use tzinfo=UTC"
        )
    return value.astimezone(UTC)


def epoch_micros(moment: datetime) -> int:
    """Microseconds since 1970-01-01 UTC of an aware datetime."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def to_id(value: object, field: str) -> int:
    """A positive integer id, or InvalidValue naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(field, f"expected a positive int id, got {type(value).__name__}")
    if not 1 <= value <= MAX_ID:
        raise InvalidValue(field, f"must be a positive id up to {MAX_ID}, got {value}")
    return value


def to_label(value: object, field: str, max_length: int = MAX_LABEL_LENGTH) -> str:
    """A non-empty printable string without surrounding whitespace."""
    if not isinstance(value, str):
        raise InvalidValue(field, f"expected str, got {type(value).__name__}")
    if not value or value != value.strip():
        raise InvalidValue(field, f"must be non-empty without surrounding spaces, got {value!r}")
    if len(value) > max_length:
        raise InvalidValue(field, f"is longer than {max_length} characters ({len(value)})")
    if not value.isprintable():
        raise InvalidValue(field, f"contains control or unprintable characters: {_preview(value)}")
    _check_encodable(value, field)
    return value


def to_choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, exactly as written (no case folding), or InvalidValue naming `field`."""
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(choice) for choice in choices)
        raise InvalidValue(field, f"must be one of {allowed}; got {value!r}")
    return value


def to_free_text(value: object, field: str, max_length: int = 10_000) -> str:
    """Free text (newlines allowed) that both backends store as given."""
    if not isinstance(value, str):
        raise InvalidValue(field, f"expected str, got {type(value).__name__}")
    if len(value) > max_length:
        raise InvalidValue(field, f"is longer than {max_length} characters ({len(value)})")
    if "\x00" in value:
        raise InvalidValue(field, "contains a NUL character, which PostgreSQL text cannot store")
    _check_encodable(value, field)
    return value


def to_json_text(value: object, field: str) -> str:
    """Compact JSON text of a mapping, refusing what JSON or PostgreSQL's jsonb cannot hold."""
    if not isinstance(value, Mapping):
        raise InvalidValue(field, f"expected a dict, got {type(value).__name__}")
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidValue(field, f"is not JSON-serialisable: {exc}") from None
    if "\\u0000" in text:
        raise InvalidValue(field, "contains a NUL character, which jsonb cannot store")
    _check_encodable(text, field)
    if len(text) > MAX_JSON_BYTES // 4 and len(text.encode()) > MAX_JSON_BYTES:
        raise InvalidValue(field, f"is larger than {MAX_JSON_BYTES} bytes as JSON")
    return text


def _check_encodable(text: str, field: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(field, "contains a lone surrogate, which is not valid UTF-8") from None


def _preview(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")

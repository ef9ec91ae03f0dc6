"""Checks that turn caller values into storable ones, or raise InvalidValue naming the field.

Shared by `Fill` and the repositories, so a value is judged the same way wherever it enters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, Inexact, InvalidOperation
from typing import Any, Final

from quantflow_async.errors import InvalidValue

MAX_SIGNIFICANT_DIGITS: Final = 38
MAX_FRACTION_DIGITS: Final = 18
MAX_SYMBOL_LENGTH: Final = 64
MAX_LABEL_LENGTH: Final = 128
MAX_JSON_BYTES: Final = 64 * 1024
MAX_ID: Final = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite
MAX_JSON_DEPTH: Final = 64
MAX_JSON_FLOAT: Final = 1e16  # PostgreSQL's jsonb gives larger floats back as integers

# The instants both backends give back as they were stored. asyncpg writes the first and
# the last instant Python can hold as PostgreSQL's -infinity and infinity, which read back
# naive (and, off UTC, as "year 0 is out of range"), so those two are left out.
EARLIEST_INSTANT: Final = datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
LATEST_INSTANT: Final = datetime(9999, 12, 31, 23, 59, 59, 999_998, tzinfo=UTC)

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MICROS_PER_DAY: Final = 86_400_000_000
"""1970-01-01 UTC: every instant the store, the bars and the engine hold as an int is
microseconds after it."""


def to_decimal(value: object, field: str) -> Decimal:
    """`value` as an exact Decimal, or InvalidValue naming `field`.

    str and int are taken as written; a float goes through its shortest repr (0.1 -> 0.1),
    never through its binary expansion. bool, NaN and infinities are refused, and so are
    values beyond 38 significant digits or 18 digits after the point. The caller's decimal
    context plays no part: every step here is exact or uses the library's own context.
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
            number = Decimal(value.strip(), context=_DIGITS_CONTEXT)
        except InvalidOperation:
            raise InvalidValue(field, f"is not a decimal number: {_preview(value)}") from None
    else:
        kind = type(value).__name__
        raise InvalidValue(field, f"expected Decimal, int, str or float, got {kind}")
    if not number.is_finite():
        raise InvalidValue(field, f"must be a finite number, got {number}")
    return _within_digit_limits(number, field)


# Normalising in this context never rounds silently (Inexact is trapped) and never overflows,
# so the limits below hold whatever context the caller has set.
_DIGITS_CONTEXT: Final = Context(
    prec=MAX_SIGNIFICANT_DIGITS, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact, InvalidOperation]
)


def _within_digit_limits(number: Decimal, field: str) -> Decimal:
    """`number` itself when its written form is short, else its shortest equal form.

    Only the coefficient and exponent are inspected, so `1e-999999999` is refused at once
    instead of being expanded to a billion characters.
    """
    _, digits, exponent = number.as_tuple()
    exponent = int(exponent)  # finite numbers only (checked by the caller)
    if len(digits) <= MAX_SIGNIFICANT_DIGITS and -MAX_FRACTION_DIGITS <= exponent <= 0:
        return number  # the usual case: stored exactly as written
    try:
        shortest = number.normalize(_DIGITS_CONTEXT)
    except Inexact:
        raise InvalidValue(
            field, f"has more than {MAX_SIGNIFICANT_DIGITS} digits: {_number_preview(number)}"
        ) from None
    _, digits, exponent = shortest.as_tuple()
    exponent = int(exponent)
    if -exponent > MAX_FRACTION_DIGITS:
        raise InvalidValue(
            field,
            f"has more than {MAX_FRACTION_DIGITS} digits after the point: "
            f"{_number_preview(number)}",
        )
    if not shortest.is_zero() and len(digits) + max(exponent, 0) > MAX_SIGNIFICANT_DIGITS:
        raise InvalidValue(
            field, f"has more than {MAX_SIGNIFICANT_DIGITS} digits: {_number_preview(number)}"
        )
    return shortest


def _number_preview(number: Decimal) -> str:
    """A short text of any Decimal: its exact form when short, else six digits and an exponent."""
    digits = number.as_tuple().digits
    if len(digits) <= 40:  # str() switches to an exponent, so its length follows the digits
        return str(number)
    return f"about {number:.6e} ({len(digits)} digits written)"


def decimal_text(number: Decimal) -> str:
    """Plain positional text of a Decimal (no exponent), which reads back equal."""
    return format(number, "f")


def to_utc(value: object, field: str) -> datetime:
    """An aware datetime converted to UTC; naive datetimes are refused, not guessed.

    Instants outside EARLIEST_INSTANT..LATEST_INSTANT are refused: one backend or the other
    cannot give them back.
    """
    if not isinstance(value, datetime):
        raise InvalidValue(field, f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue(
            field, f"must be timezone-aware (got naive {value.isoformat()}); use tzinfo=UTC"
        )
    try:
        moment = value.astimezone(UTC)
    except OverflowError:  # in UTC it falls before year 1 or after year 9999
        moment = None
    if moment is None or not EARLIEST_INSTANT <= moment <= LATEST_INSTANT:
        raise InvalidValue(
            field,
            f"must be between {EARLIEST_INSTANT.isoformat()} and {LATEST_INSTANT.isoformat()} "
            f"in UTC, got {value.isoformat()}",
        )
    return moment


def epoch_micros(moment: datetime) -> int:
    """Microseconds since 1970-01-01 UTC of an aware datetime."""
    return span_micros(moment - EPOCH)


def span_micros(span: timedelta) -> int:
    """The whole microseconds of a timedelta, exactly (no float on the way)."""
    return (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds


def from_epoch_micros(micros: int) -> datetime:
    """The aware UTC datetime `micros` microseconds after 1970-01-01 (inverse of epoch_micros)."""
    return EPOCH + timedelta(microseconds=micros)


def refuse_unknown_keywords(
    given: Iterable[str], known: Iterable[str], what: str, plural: str
) -> None:
    """TypeError naming the first of `given` that is not `known` (an unknown `what`), and
    listing those that are (the `plural`)."""
    known = list(known)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise TypeError(f"unknown {what} {unknown[0]!r}; the {plural} are {', '.join(known)}")


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
    """Compact JSON text of a mapping that both backends give back equal, or InvalidValue.

    Keys must be str, floats finite and below 1e16 in size (jsonb gives larger ones back as
    integers), nesting at most MAX_JSON_DEPTH deep. Two changes are made on the way in, the
    same on both backends: tuples become lists, and -0.0 becomes 0.0 (jsonb has no -0.0).
    """
    if not isinstance(value, Mapping):
        raise InvalidValue(field, f"expected a dict, got {type(value).__name__}")
    document = _plain_json(value, field, 1)
    try:
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    except ValueError as exc:  # an int beyond Python's digit limit for text
        raise InvalidValue(field, f"is not JSON-serialisable: {exc}") from None
    if "\\u0000" in text:
        raise InvalidValue(field, "contains a NUL character, which jsonb cannot store")
    _check_encodable(text, field)
    if len(text) > MAX_JSON_BYTES // 4 and len(text.encode()) > MAX_JSON_BYTES:
        raise InvalidValue(field, f"is larger than {MAX_JSON_BYTES} bytes as JSON")
    return text


def _plain_json(value: object, field: str, depth: int) -> Any:
    """A copy of `value` made of dict, list, str, int, float, bool and None only."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return _json_float(value, field)
    if depth > MAX_JSON_DEPTH:
        raise InvalidValue(field, f"is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, Mapping):
        copy: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                kind = type(key).__name__
                raise InvalidValue(field, f"has the {kind} key {key!r}; JSON keys are str")
            copy[key] = _plain_json(item, field, depth + 1)
        return copy
    if isinstance(value, list | tuple):
        if plain_numbers(value):
            # -0.0 + 0.0 is 0.0, as _json_float gives
            return list(map((0.0).__add__, value)) if type(value[0]) is float else list(value)
        return [_plain_json(item, field, depth + 1) for item in value]
    raise InvalidValue(field, f"is not JSON-serialisable: holds a {type(value).__name__}")


def plain_numbers(items: list[Any] | tuple[Any, ...]) -> bool:
    """Whether `items` are all ints, or all floats that JSON keeps as they are (finite and
    below MAX_JSON_FLOAT in size): an equity curve's thousands of numbers are checked by
    whole-list passes instead of a call each."""
    if not items:
        return False
    kinds = set(map(type, items))  # exact types, so bool (an int) is not taken for one
    if kinds == _INT:
        return True
    return (
        kinds == _FLOAT and all(map(math.isfinite, items)) and max(map(abs, items)) < MAX_JSON_FLOAT
    )


_INT: Final = {int}
_FLOAT: Final = {float}


def _json_float(value: float, field: str) -> float:
    if not math.isfinite(value):
        raise InvalidValue(field, f"is not JSON-serialisable: holds the float {value!r}")
    if abs(value) >= MAX_JSON_FLOAT:
        raise InvalidValue(
            field,
            f"holds the float {value!r}, which PostgreSQL gives back as an integer; "
            "store it as an int or a str",
        )
    return value + 0.0  # -0.0 + 0.0 is 0.0: jsonb has no negative zero


def _check_encodable(text: str, field: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(field, "contains a lone surrogate, which is not valid UTF-8") from None


def _preview(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")

"""Column types that keep money exact and time in UTC on every backend.

SQLite has no decimal type, so Decimals are stored as plain decimal TEXT (exact round trip;
sums are done in Python with Decimal) and instants as INTEGER microseconds since the epoch
(compact, sortable, fast to index). PostgreSQL uses NUMERIC and timestamptz.
Migrations import these types, so their storage must never change in place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.types import TypeDecorator

from quantflow_async.validation import decimal_text, epoch_micros, from_epoch_micros


class ExactDecimal(TypeDecorator[Decimal]):
    """Decimal in, Decimal out: NUMERIC on PostgreSQL, decimal TEXT on SQLite."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return decimal_text(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes read back in UTC: timestamptz on PostgreSQL, epoch microseconds on SQLite."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored; give a tzinfo")
        if dialect.name == "sqlite":
            return epoch_micros(value)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return from_epoch_micros(int(value))


class EncodedJson(TypeDecorator[str]):
    """JSON text already encoded and checked (`validation.to_json_text`), bound into a JSON
    column as it is: jsonb on PostgreSQL, JSON text on SQLite. The JSON type would encode
    the document again, in the event loop, for every row."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())

    def bind_processor(self, dialect: Dialect) -> None:
        return None


class utc_now(FunctionElement[datetime]):  # noqa: N801 - reads as a SQL function
    """The current instant in each backend's storage form, for server defaults."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(utc_now, "sqlite")
def _utc_now_sqlite(element: utc_now, compiler: Any, **kw: Any) -> str:
    # Millisecond precision, exact integer arithmetic; 'now' is fixed within one statement.
    return (
        "(CAST(strftime('%s','now') AS INTEGER) * 1000000"
        " + CAST(substr(strftime('%f','now'), 4) AS INTEGER) * 1000)"
    )


@compiles(utc_now)
def _utc_now_default(element: utc_now, compiler: Any, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"

"""The records of the public API: `Fill` going in, immutable `Strategy`, `Backtest`, `Trade` out.

A `Fill` validates and normalises itself once, when it is made, and keeps its SQLite driver row
ready, so that the writer's serial path does no per-row conversion. JSON documents inside the
records read back as `JsonObject` and `JsonArray`: a dict and a list that cannot be changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal, TypeAlias, get_args

from quantflow_async.errors import InvalidValue
from quantflow_async.json_values import JsonArray as JsonArray
from quantflow_async.json_values import JsonObject as JsonObject
from quantflow_async.json_values import freeze_fields
from quantflow_async.json_values import frozen_json as frozen_json
from quantflow_async.validation import (
    MAX_SYMBOL_LENGTH,
    decimal_text,
    epoch_micros,
    from_epoch_micros,
    to_choice,
    to_decimal,
    to_id,
    to_json_text,
    to_label,
    to_utc,
)

DecimalInput: TypeAlias = Decimal | int | str | float
Side: TypeAlias = Literal["buy", "sell"]
TradeStatus: TypeAlias = Literal["filled", "partially_filled", "cancelled"]
StrategyStatus: TypeAlias = Literal["inactive", "active", "paused", "archived"]
BacktestStatus: TypeAlias = Literal["pending", "running", "completed", "failed", "cancelled"]

SIDES: Final[tuple[Side, ...]] = get_args(Side)
TRADE_STATUSES: Final[tuple[TradeStatus, ...]] = get_args(TradeStatus)
STRATEGY_STATUSES: Final[tuple[StrategyStatus, ...]] = get_args(StrategyStatus)
BACKTEST_STATUSES: Final[tuple[BacktestStatus, ...]] = get_args(BacktestStatus)


TRADE_INSERT_COLUMNS: Final = (
    "strategy_id",
    "backtest_id",
    "symbol",
    "side",
    "type",
    "quantity",
    "price",
    "fee",
    "executed_at",
    "status",
    "metadata",
    "pnl",
    "external_id",
)
"""The trades columns a Fill fills, in the order of its driver row (built in `Fill.__init__`)
and of the columns the insert statements name."""


class Fill:
    """One execution to store: validated and normalised when it is made, immutable after.

    Money fields are exact Decimals. `executed_at` must be timezone-aware and is kept in UTC.
    `external_id` is the venue's or simulator's fill id: a fill whose external_id is already
    stored is skipped, so re-delivering a fill never stores it twice. It is unique across the
    whole trades table, so make it unique per venue (for example "binance:BTCUSDT:28457").
    """

    __slots__ = (
        "_metadata_json",
        "_row",
        "backtest_id",
        "executed_at",
        "external_id",
        "fee",
        "pnl",
        "price",
        "quantity",
        "side",
        "status",
        "strategy_id",
        "symbol",
        "type",
    )

    strategy_id: int
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    executed_at: datetime
    backtest_id: int | None
    type: str
    fee: Decimal | None
    status: TradeStatus
    pnl: Decimal | None
    external_id: str | None
    _metadata_json: str | None
    _row: tuple[Any, ...]

    def __init__(
        self,
        *,
        strategy_id: int,
        symbol: str,
        side: Side,
        quantity: DecimalInput,
        price: DecimalInput,
        executed_at: datetime,
        backtest_id: int | None = None,
        type: str = "market",
        fee: DecimalInput | None = None,
        status: TradeStatus = "filled",
        metadata: Mapping[str, Any] | None = None,
        pnl: DecimalInput | None = None,
        external_id: str | None = None,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "strategy_id", to_id(strategy_id, "strategy_id"))
        set_(
            self, "backtest_id", None if backtest_id is None else to_id(backtest_id, "backtest_id")
        )
        set_(self, "symbol", to_label(symbol, "symbol", MAX_SYMBOL_LENGTH))
        set_(self, "side", to_choice(side, "side", SIDES))
        set_(self, "type", to_label(type, "type", 32))
        set_(self, "status", to_choice(status, "status", TRADE_STATUSES))
        qty = to_decimal(quantity, "quantity")
        if qty <= 0:
            raise InvalidValue("quantity", f"must be > 0, got {qty}")
        set_(self, "quantity", qty)
        px = to_decimal(price, "price")
        if px < 0:
            raise InvalidValue("price", f"must be >= 0, got {px}")
        set_(self, "price", px)
        set_(self, "fee", None if fee is None else to_decimal(fee, "fee"))
        set_(self, "pnl", None if pnl is None else to_decimal(pnl, "pnl"))
        at = to_utc(executed_at, "executed_at")
        set_(self, "executed_at", at)
        set_(
            self, "_metadata_json", None if metadata is None else to_json_text(metadata, "metadata")
        )
        set_(
            self,
            "external_id",
            None if external_id is None else to_label(external_id, "external_id"),
        )
        set_(
            self,
            "_row",
            (
                self.strategy_id,
                self.backtest_id,
                self.symbol,
                side,
                self.type,
                decimal_text(qty),
                decimal_text(px),
                None if self.fee is None else decimal_text(self.fee),
                epoch_micros(at),
                status,
                self._metadata_json,
                None if self.pnl is None else decimal_text(self.pnl),
                self.external_id,
            ),
        )

    @property
    def metadata(self) -> dict[str, Any] | None:
        """A fresh copy of the metadata, so the stored fill cannot be changed through it."""
        if self._metadata_json is None:
            return None
        document: dict[str, Any] = json.loads(self._metadata_json)
        return document

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Fill is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Fill is immutable; cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fill):
            return NotImplemented
        return self._row == other._row

    def __hash__(self) -> int:
        return hash(self._row)

    def __repr__(self) -> str:
        ext = f", external_id={self.external_id!r}" if self.external_id is not None else ""
        return (
            f"Fill(strategy_id={self.strategy_id}, backtest_id={self.backtest_id}, "
            f"symbol={self.symbol!r}, side={self.side!r}, quantity={self.quantity}, "
            f"price={self.price}, executed_at={self.executed_at.isoformat()}{ext})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # A Fill crosses to other processes (sweep workers) as its driver row alone: cheap to
        # send, not checked again, and unpacked into attributes only if someone reads them.
        return (_restore_fill, (self._row,))

    def __getattr__(self, name: str) -> Any:
        # Reached only for a slot not yet set: a Fill restored from its row.
        if name in _UNPACKED and name != "_row":
            try:
                row = object.__getattribute__(self, "_row")
            except AttributeError:
                pass
            else:
                self._unpack(row)
                return object.__getattribute__(self, name)
        raise AttributeError(f"'Fill' object has no attribute {name!r}")

    def _unpack(self, row: tuple[Any, ...]) -> None:
        values = dict(zip(TRADE_INSERT_COLUMNS, row, strict=True))
        for name in ("quantity", "price", "fee", "pnl"):
            values[name] = None if values[name] is None else Decimal(values[name])
        values["executed_at"] = from_epoch_micros(values["executed_at"])
        values["_metadata_json"] = values.pop("metadata")
        for name, value in values.items():
            object.__setattr__(self, name, value)


def _restore_fill(row: tuple[Any, ...]) -> Fill:
    fill = object.__new__(Fill)
    object.__setattr__(fill, "_row", row)
    return fill


_UNPACKED: Final = frozenset(Fill.__slots__)


def fills_from_rows(rows: Iterable[tuple[Any, ...]]) -> list[Fill]:
    """Fills back from their driver rows (`sqlite_rows`), as another process made and checked
    them: not checked again, and unpacked into attributes only if someone reads them. A
    list of rows crosses a process boundary several times cheaper than a list of Fills."""
    return [_restore_fill(row) for row in rows]


def sqlite_rows(fills: Iterable[Fill]) -> list[tuple[Any, ...]]:
    """Each fill's SQLite driver row, made when the fill was: the values of
    `TRADE_INSERT_COLUMNS` in order (decimal text, epoch microseconds, JSON text)."""
    return [fill._row for fill in fills]


def postgres_columns(fills: Sequence[Fill]) -> list[list[Any]]:
    """The fills as one list per column of `TRADE_INSERT_COLUMNS`, in the values asyncpg
    takes (Decimal, aware datetime, JSON text)."""
    return [[getattr(fill, name) for fill in fills] for name in _POSTGRES_ATTRIBUTES]


_POSTGRES_ATTRIBUTES: Final = tuple(
    "_metadata_json" if name == "metadata" else name for name in TRADE_INSERT_COLUMNS
)


@dataclass(frozen=True, slots=True)
class Strategy:
    """A stored strategy, as read back: its unique name, its configuration and its status.

    `config` and `metrics` are read-only JSON objects (`JsonObject`); `updated_at` moves on
    every change. Get one from `db.strategies`.
    """

    id: int
    name: str
    config: Mapping[str, Any]
    description: str | None
    status: StrategyStatus
    metrics: Mapping[str, Any] | None
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        freeze_fields(self, "config", "metrics")


@dataclass(frozen=True, slots=True)
class Backtest:
    """A stored backtest of one strategy over `start_date`..`end_date`, as read back.

    `status` follows the lifecycle pending -> running -> completed, failed or cancelled.
    `config`, `metrics` and `results` are read-only JSON objects (`JsonObject`).
    """

    id: int
    name: str
    strategy_id: int
    config: Mapping[str, Any]
    status: BacktestStatus
    start_date: datetime
    end_date: datetime
    initial_capital: Decimal
    metrics: Mapping[str, Any] | None
    results: Mapping[str, Any] | None
    created_at: datetime
    updated_at: datetime
    sweep_id: int | None = None
    """The sweep that ran it (`db.sweeps`), or None for a backtest run on its own."""
    job_key: str | None = None
    """Within its sweep, the hash of what it runs: strategy, parameters, data and options."""

    def __post_init__(self) -> None:
        freeze_fields(self, "config", "metrics", "results")


@dataclass(frozen=True, slots=True)
class Trade:
    """A stored fill, as read back: exact Decimals, times in UTC, `metadata` read-only.

    The field order is the column order the repositories read, so a row becomes a record
    positionally.
    """

    id: int
    strategy_id: int
    backtest_id: int | None
    symbol: str
    side: Side
    type: str
    quantity: Decimal
    price: Decimal
    fee: Decimal | None
    executed_at: datetime
    status: TradeStatus
    metadata: Mapping[str, Any] | None
    pnl: Decimal | None
    external_id: str | None
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        if self.metadata is not None:
            freeze_fields(self, "metadata")


@dataclass(frozen=True, slots=True)
class SymbolSummary:
    """Exact per-symbol totals of a set of trades."""

    symbol: str
    trade_count: int
    bought_quantity: Decimal
    sold_quantity: Decimal
    notional: Decimal
    fees: Decimal
    realized_pnl: Decimal

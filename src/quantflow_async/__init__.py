"""QuantFlow Async: exact, durable, batched storage of strategies, backtests, orders and fills.

async with Database() as db:
    await db.migrate()
    async with db.writer() as writer:
        await writer.submit(fill)

Importing the package is cheap: each public name loads its module when first used (PEP 562),
so `quantflow --help` and a script that needs only the errors never load SQLAlchemy or numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quantflow_async.backtest import (
        SearchResult,
        SweepProgress,
        SweepResult,
        resume_backtest,
        run_search,
        run_stored_backtest,
        run_sweep,
    )
    from quantflow_async.config import (
        Settings,
        WriterOptions,
    )
    from quantflow_async.database import (
        Database,
    )
    from quantflow_async.errors import (
        BacktestError,
        BacktestFailed,
        BarsError,
        Conflict,
        DatabaseNotOpen,
        FillRejected,
        InvalidTransition,
        InvalidValue,
        LiveError,
        MalformedVenueAnswer,
        MigrationError,
        MissingExtra,
        NotFound,
        OrderEventRefused,
        QuantFlowError,
        QueueFull,
        StorageError,
        StorageUnavailable,
        StrategyConfigError,
        VenueError,
        VenueRejected,
        VenueUnavailable,
        WriterClosed,
        WriterError,
        WriterFailed,
        WriterNotRunning,
    )
    from quantflow_async.ingest.stats import (
        WriterStats,
    )
    from quantflow_async.ingest.writer import (
        TradeWriter,
    )
    from quantflow_async.order_records import (
        BalanceSnapshot,
        Order,
        OrderEvent,
        Position,
    )
    from quantflow_async.records import (
        Backtest,
        Fill,
        Strategy,
        SymbolSummary,
        Trade,
    )

_WHERE: dict[str, str] = {
    "SearchResult": "quantflow_async.backtest",
    "SweepProgress": "quantflow_async.backtest",
    "SweepResult": "quantflow_async.backtest",
    "resume_backtest": "quantflow_async.backtest",
    "run_search": "quantflow_async.backtest",
    "run_stored_backtest": "quantflow_async.backtest",
    "run_sweep": "quantflow_async.backtest",
    "Settings": "quantflow_async.config",
    "WriterOptions": "quantflow_async.config",
    "WriterDefaults": "quantflow_async.config",  # deprecated: WriterOptions
    "Database": "quantflow_async.database",
    "BacktestError": "quantflow_async.errors",
    "BacktestFailed": "quantflow_async.errors",
    "BarsError": "quantflow_async.errors",
    "Conflict": "quantflow_async.errors",
    "DatabaseNotOpen": "quantflow_async.errors",
    "FillRejected": "quantflow_async.errors",
    "InvalidTransition": "quantflow_async.errors",
    "InvalidValue": "quantflow_async.errors",
    "LiveError": "quantflow_async.errors",
    "MalformedVenueAnswer": "quantflow_async.errors",
    "MigrationError": "quantflow_async.errors",
    "MissingExtra": "quantflow_async.errors",
    "NotFound": "quantflow_async.errors",
    "OrderEventRefused": "quantflow_async.errors",
    "QuantFlowError": "quantflow_async.errors",
    "QueueFull": "quantflow_async.errors",
    "StorageError": "quantflow_async.errors",
    "StorageUnavailable": "quantflow_async.errors",
    "StrategyConfigError": "quantflow_async.errors",
    "VenueError": "quantflow_async.errors",
    "VenueRejected": "quantflow_async.errors",
    "VenueUnavailable": "quantflow_async.errors",
    "WriterClosed": "quantflow_async.errors",
    "WriterError": "quantflow_async.errors",
    "WriterFailed": "quantflow_async.errors",
    "WriterNotRunning": "quantflow_async.errors",
    "WriterStats": "quantflow_async.ingest.stats",
    "TradeWriter": "quantflow_async.ingest.writer",
    "BalanceSnapshot": "quantflow_async.order_records",
    "Order": "quantflow_async.order_records",
    "OrderEvent": "quantflow_async.order_records",
    "Position": "quantflow_async.order_records",
    "Backtest": "quantflow_async.records",
    "Fill": "quantflow_async.records",
    "Strategy": "quantflow_async.records",
    "SymbolSummary": "quantflow_async.records",
    "Trade": "quantflow_async.records",
}

__all__ = [
    "Backtest",
    "BacktestError",
    "BacktestFailed",
    "BalanceSnapshot",
    "BarsError",
    "Conflict",
    "Database",
    "DatabaseNotOpen",
    "Fill",
    "FillRejected",
    "InvalidTransition",
    "InvalidValue",
    "LiveError",
    "MalformedVenueAnswer",
    "MigrationError",
    "MissingExtra",
    "NotFound",
    "Order",
    "OrderEvent",
    "OrderEventRefused",
    "Position",
    "QuantFlowError",
    "QueueFull",
    "SearchResult",
    "Settings",
    "StorageError",
    "StorageUnavailable",
    "Strategy",
    "StrategyConfigError",
    "SweepProgress",
    "SweepResult",
    "SymbolSummary",
    "Trade",
    "TradeWriter",
    "VenueError",
    "VenueRejected",
    "VenueUnavailable",
    "WriterClosed",
    "WriterError",
    "WriterFailed",
    "WriterNotRunning",
    "WriterOptions",
    "WriterStats",
    "resume_backtest",
    "run_search",
    "run_stored_backtest",
    "run_sweep",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'quantflow_async' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    if name not in _DEPRECATED:  # a deprecated name warns at each use
        globals()[name] = value  # the next look-up is a plain one
    return value


_DEPRECATED: frozenset[str] = frozenset({"WriterDefaults"})


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

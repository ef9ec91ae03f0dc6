"""QuantFlow Async: exact, durable, batched storage of strategies, backtests and fills.

async with Database() as db:
    await db.migrate()
    async with db.writer() as writer:
        await writer.submit(fill)
"""

from quantflow_async.backtest import (
    SweepProgress,
    SweepResult,
    resume_backtest,
    run_stored_backtest,
    run_sweep,
)
from quantflow_async.config import Settings, WriterDefaults
from quantflow_async.database import Database
from quantflow_async.errors import (
    BacktestError,
    BacktestFailed,
    BarsError,
    Conflict,
    DatabaseNotOpen,
    FillRejected,
    InvalidTransition,
    InvalidValue,
    MigrationError,
    NotFound,
    QuantFlowError,
    QueueFull,
    StorageError,
    StorageUnavailable,
    StrategyConfigError,
    WriterClosed,
    WriterError,
    WriterFailed,
    WriterNotRunning,
)
from quantflow_async.ingest.stats import WriterStats
from quantflow_async.ingest.writer import TradeWriter
from quantflow_async.records import Backtest, Fill, Strategy, SymbolSummary, Trade

__all__ = [
    "Backtest",
    "BacktestError",
    "BacktestFailed",
    "BarsError",
    "Conflict",
    "Database",
    "DatabaseNotOpen",
    "Fill",
    "FillRejected",
    "InvalidTransition",
    "InvalidValue",
    "MigrationError",
    "NotFound",
    "QuantFlowError",
    "QueueFull",
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
    "WriterClosed",
    "WriterDefaults",
    "WriterError",
    "WriterFailed",
    "WriterNotRunning",
    "WriterStats",
    "resume_backtest",
    "run_stored_backtest",
    "run_sweep",
]

__version__ = "0.1.0"

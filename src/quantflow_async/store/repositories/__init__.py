"""The async repositories: one per table, each returning immutable records."""

from quantflow_async.store.repositories.backtests import BacktestRepository
from quantflow_async.store.repositories.strategies import StrategyRepository
from quantflow_async.store.repositories.trades import TradeRepository

__all__ = ["BacktestRepository", "StrategyRepository", "TradeRepository"]

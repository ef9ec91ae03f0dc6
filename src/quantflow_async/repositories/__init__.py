"""The async repositories: one per table, each returning immutable records."""

from quantflow_async.repositories.backtests import BacktestRepository
from quantflow_async.repositories.strategies import StrategyRepository
from quantflow_async.repositories.trades import TradeRepository

__all__ = ["BacktestRepository", "StrategyRepository", "TradeRepository"]

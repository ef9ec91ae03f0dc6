"""One backtest's run, all of it but the bars: the strategy, its parameters and settings.

`RunSpec` is what the stored entry points hand the engine (`run_stored_backtest`, a sweep's
jobs, a search's trials, the checks of `quantflow backtest run`) and what a stored
backtest's config is read back into.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from quantflow_async.backtest.bars import Bars
from quantflow_async.backtest.engine import BacktestResult, check_settings, run_backtest
from quantflow_async.backtest.rounding import MONEY_DECIMALS, price_decimals
from quantflow_async.backtest.settings import RunOptions as RunOptions  # named here too
from quantflow_async.backtest.strategies import strategy_class, strategy_reference
from quantflow_async.backtest.strategy import Strategy
from quantflow_async.backtest.strategy_reference import is_loaded_from_file
from quantflow_async.errors import StrategyConfigError
from quantflow_async.validation import refuse_unknown_keywords

if TYPE_CHECKING:
    from typing_extensions import Unpack


DEFAULT_SYMBOL: Final = "ASSET"
"""The symbol of a run that is given none."""


def split_symbol(options: RunOptions) -> tuple[str, dict[str, Any]]:
    """The symbol that names a lone data set of a sweep or search (RunSpec's default if not
    given), and the other options, which every backtest of it shares."""
    shared: dict[str, Any] = dict(options)
    return shared.pop("symbol", DEFAULT_SYMBOL), shared


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One backtest's strategy, parameters and settings: all of it but the bars.

    Made from arguments (`RunSpec.of`, which checks the parameters before anything is
    stored) or from a stored backtest's config (`RunSpec.from_config`); picklable, so a
    sweep sends it to its worker processes.
    """

    strategy: type[Strategy]
    parameters: dict[str, Any]
    symbol: str = DEFAULT_SYMBOL
    cash: float = 10_000.0
    commission: float = 0.0
    slippage: float = 0.0
    exclusive_orders: bool = True
    periods_per_year: float | None = None
    margin: float = 1.0
    trade_on_close: bool = False
    hedging: bool = False
    finalize_trades: bool = False
    spread: float = 0.0
    price_decimals: int | None = None
    money_decimals: int = MONEY_DECIMALS

    def __reduce__(self) -> tuple[Any, ...]:
        values = (
            self.parameters, self.symbol, self.cash, self.commission, self.slippage,
            self.exclusive_orders, self.periods_per_year, self.margin, self.trade_on_close,
            self.hedging, self.finalize_trades, self.spread, self.price_decimals,
            self.money_decimals,
        )  # fmt: skip
        if is_loaded_from_file(self.strategy):
            # A class from a user's file lives in a module only this process knows: it
            # travels as its reference, which a worker process loads.
            return (_spec_from_reference, (strategy_reference(self.strategy), *values))
        return (RunSpec, (self.strategy, *values))

    @classmethod
    def of(
        cls,
        strategy: str | type[Strategy],
        config: Mapping[str, Any] | None = None,
        **settings: Unpack[RunOptions],
    ) -> RunSpec:
        """Check `config` against the strategy and the settings (`check_settings`) now:
        StrategyConfigError names a bad key or setting."""
        refuse_unknown_keywords(settings, RunOptions.__annotations__, "run option", "run options")
        strategy_type = strategy_class(strategy) if isinstance(strategy, str) else strategy
        spec = cls(strategy_type, dict(strategy_type(config).config), **settings)
        check_settings(**spec.settings())
        return spec

    def settings(self) -> dict[str, Any]:
        """Every setting but the strategy and its parameters, as `run_backtest` takes them."""
        return {
            name: getattr(self, name)
            for name in RunSpec.__dataclass_fields__
            if name not in ("strategy", "parameters")
        }

    @classmethod
    def from_config(
        cls,
        document: Mapping[str, Any],
        cash: float,
        strategy: str | type[Strategy] | None = None,
    ) -> RunSpec:
        """The spec a stored backtest was run with; `strategy` for one not registered by name."""
        try:
            # Settings added since a backtest was stored take their defaults.
            added = {key: document[key] for key in _ADDED_SETTINGS if key in document}
            return cls.of(
                document["strategy"] if strategy is None else strategy,
                document["parameters"],
                symbol=document["symbol"],
                cash=cash,
                commission=document["commission"],
                slippage=document["slippage"],
                exclusive_orders=document["exclusive_orders"],
                periods_per_year=document["periods_per_year"],
                **added,
            )
        except KeyError as exc:
            raise StrategyConfigError(
                "config", f"the stored backtest's config has no {exc.args[0]!r}"
            ) from None

    @property
    def strategy_name(self) -> str:
        """The reference that finds the strategy again (strategy_reference), or for a class
        no other process can import, its module and name."""
        try:
            return strategy_reference(self.strategy)
        except StrategyConfigError:
            return f"{self.strategy.__module__}.{self.strategy.__qualname__}"

    def run(self, bars: Bars) -> BacktestResult:
        """The engine's run; a strategy that raises propagates its exception. Its fills are
        to be stored with prices to the data's own precision unless `price_decimals` says."""
        settings = self.settings()
        if settings["price_decimals"] is None:
            settings["price_decimals"] = _data_decimals(bars)
        return run_backtest(self.strategy, bars, self.parameters, **settings)

    def config_document(self, bars: Bars) -> dict[str, Any]:
        """`backtests.config`: everything but the bars (named by `data`) and the cash (the
        backtest's `initial_capital`) needed to run the backtest again."""
        return {
            "strategy": self.strategy_name,
            "parameters": dict(self.parameters),
            "symbol": self.symbol,
            "data": bars.source,
            "bars": len(bars),
            "commission": self.commission,
            "slippage": self.slippage,
            "exclusive_orders": self.exclusive_orders,
            "periods_per_year": self.periods_per_year,
            **{key: getattr(self, key) for key in _ADDED_SETTINGS},
        }

    def default_name(self) -> str:
        """ "sma_cross ASSET fast=10 slow=20": the strategy, the symbol and the parameters."""
        parameters = " ".join(f"{key}={value}" for key, value in self.parameters.items())
        return f"{self.strategy_name} {self.symbol} {parameters}".strip()[:200]


_ADDED_SETTINGS: Final = (
    "margin",
    "trade_on_close",
    "hedging",
    "finalize_trades",
    "spread",
    "price_decimals",
    "money_decimals",
)
_last_bars: list[tuple[Bars, int | None]] = []


def _data_decimals(bars: Bars) -> int | None:
    # A sweep runs many specs over the same bars in one process: measure them once.
    if _last_bars and _last_bars[0][0] is bars:
        return _last_bars[0][1]
    decimals = price_decimals(bars)
    _last_bars[:] = [(bars, decimals)]
    return decimals


def _spec_from_reference(reference: str, *values: Any) -> RunSpec:
    return RunSpec(strategy_class(reference), *values)

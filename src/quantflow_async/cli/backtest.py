"""`quantflow backtest run`: one backtest from a bars file, stored with its fills and metrics."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from quantflow_async.cli.output import json_object, plain, print_fields, reading
from quantflow_async.cli.parsing import Parser, add_command, add_group
from quantflow_async.cli.run_options import add_run_options, run_settings, setting_error
from quantflow_async.cli.stopping import sigterm_as_ctrl_c
from quantflow_async.config import Settings
from quantflow_async.errors import Conflict, NotFound

if TYPE_CHECKING:
    from quantflow_async.database import Database

STRATEGY_NAMES: Final = ("bollinger", "sma_cross")
"""The names of `quantflow_async.backtest.STRATEGIES`, for the help texts: importing that
package loads numpy and the database, which `--help` must not (a test checks the two agree)."""

SUMMARY: Final = (
    "trades",
    "final_equity",
    "return_pct",
    "max_drawdown_pct",
    "win_rate_pct",
    "profit_factor",
    "sharpe",
    "sortino",
    "fees",
)
"""The metrics the table shows and `--json` always carries (it carries every metric)."""


async def run(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.backtest import read_bars, run_stored_backtest
    from quantflow_async.backtest.bars import check_storable
    from quantflow_async.database import Database

    # Every mistake in the input is found before the database is opened.
    bars = read_bars(args.data)
    check_storable(bars)
    symbol = args.symbol or Path(args.data).stem.upper()
    options = run_settings(args)
    check_run(
        args.strategy,
        args.config,
        cash=args.cash,
        commission=args.commission,
        symbol=symbol,
        **options,
    )
    async with Database(settings=settings) as db:
        strategy_id = await stored_strategy_id(db, args.strategy)
        backtest = await run_stored_backtest(
            db,
            args.strategy,
            bars,
            args.config,
            strategy_id=strategy_id,
            cash=args.cash,
            commission=args.commission,
            symbol=symbol,
            name=args.name,
            **options,
        )
        fills = await db.trades.count(backtest_id=backtest.id)
    metrics: dict[str, Any] = dict(backtest.metrics or {})
    if args.json:
        document = {"backtest_id": backtest.id, "status": backtest.status, "fills": fills}
        print(json.dumps(plain({**document, **metrics}), separators=(",", ":")))
        return
    print_fields(
        [("backtest", backtest.id), ("name", backtest.name), ("status", backtest.status)]
        + [("fills stored", fills)]
        + [(key, metrics.get(key)) for key in SUMMARY],
        title=f"backtest {backtest.id}",
    )


def check_run(strategy: str, config: Mapping[str, Any], **settings: Any) -> None:
    """Check a run's parameters and its settings (the engine's one check) before anything is
    opened; a bad setting is a mistake naming its option: "--commission: must be in ..."."""
    from quantflow_async.backtest import RunSpec

    with settings_named_as_options(settings):
        RunSpec.of(strategy, config, **settings)


@contextmanager
def settings_named_as_options(settings: Mapping[str, Any]) -> Iterator[None]:
    """A StrategyConfigError about one of `settings` becomes the mistake of its option."""
    from quantflow_async.backtest import StrategyConfigError

    try:
        yield
    except StrategyConfigError as exc:
        if exc.key in settings:
            raise setting_error(exc.key, exc.reason) from exc
        raise


async def stored_strategy_id(db: Database, name: str) -> int:
    """The stored strategy named as the engine's strategy, created on first use."""
    try:
        return (await db.strategies.get_by_name(name)).id
    except NotFound:
        pass
    try:
        created = await db.strategies.create(name=name, description=f"the built-in {name}")
    except Conflict:  # another process created it meanwhile
        return (await db.strategies.get_by_name(name)).id
    return created.id


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    verbs = add_group(commands, "backtest")
    command = add_command(
        verbs,
        "run",
        "run a strategy over a bars file and store the backtest, its fills and metrics "
        "(on a database `quantflow migrate` made)",
        sigterm_as_ctrl_c(reading(run)),
    )
    command.add_argument(
        "strategy",
        metavar="STRATEGY",
        help=f"one of {', '.join(STRATEGY_NAMES)}, an installed strategy's name, "
        "path/to/file.py:ClassName or package.module:ClassName",
    )
    command.add_argument("--data", required=True, metavar="FILE", help="OHLCV bars: CSV or Parquet")
    command.add_argument(
        "--config",
        type=json_object,
        default={},
        metavar="JSON",
        help="""the strategy's parameters, e.g. '{"fast": 10, "slow": 20}' or @config.json""",
    )
    command.add_argument("--cash", type=float, default=10_000.0, help="starting cash (10000)")
    command.add_argument(
        "--commission", type=float, default=0.0, metavar="RATE", help="fraction of notional (0)"
    )
    add_run_options(command)
    command.add_argument("--symbol", help="the fills' symbol (default: the file's name)")
    command.add_argument("--name", help="the backtest's name (default: strategy and parameters)")
    command.add_argument(
        "--json", action="store_true", help="print one JSON object: backtest_id and metrics"
    )

"""The run options of a backtest on the command line, shared by `backtest run` and `sweep`.

`add_run_options(parser)` declares them; `run_settings(args)` gives them back as the keyword
arguments `run_stored_backtest`, `run_sweep` and `RunSpec.of` take. The engine checks the
values (one check, `check_settings`); `setting_error` names the option of a bad one.
"""

from __future__ import annotations

import argparse
from typing import Any, Final

from quantflow_async.cli.output import CommandError

RUN_OPTIONS: Final = (
    "margin",
    "trade_on_close",
    "hedging",
    "exclusive_orders",
    "finalize_trades",
    "spread",
    "slippage",
    "periods_per_year",
    "price_decimals",
    "money_decimals",
)
"""The settings `run_settings` gives, each from the option of its name (`--trade-on-close`)."""


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Declare the run options on `parser`, each defaulting to the engine's default."""
    group = parser.add_argument_group("run options (as backtesting.py's)")
    group.add_argument(
        "--margin",
        type=float,
        default=1.0,
        metavar="M",
        help="share of a position's value the account holds: 0.5 is leverage 2 (1)",
    )
    group.add_argument(
        "--trade-on-close",
        action="store_true",
        help="market orders fill at the close of the bar they were placed on, not the next open",
    )
    group.add_argument(
        "--hedging",
        action="store_true",
        help="opposite orders open trades of their own instead of closing open ones FIFO",
    )
    group.add_argument(
        "--exclusive-orders",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="each new order cancels the others and closes the position first (on)",
    )
    group.add_argument(
        "--finalize-trades",
        action="store_true",
        help="close the trades still open at the last bar, so they count as trades",
    )
    group.add_argument(
        "--spread", type=float, default=0.0, metavar="S", help="fraction of price entries pay (0)"
    )
    group.add_argument(
        "--slippage",
        type=float,
        default=0.0,
        metavar="S",
        help="fraction of price every fill not at a limit gives away (0)",
    )
    group.add_argument(
        "--periods-per-year",
        type=float,
        default=None,
        metavar="N",
        help="bars a year for the per-bar ratios (default: from the bars' spacing)",
    )
    group.add_argument(
        "--price-decimals",
        type=int,
        default=None,
        metavar="N",
        help="decimals of the stored fill prices (default: the most the data's prices have)",
    )
    group.add_argument(
        "--money-decimals",
        type=int,
        default=8,
        metavar="N",
        help="decimals of the stored fees and pnl (8)",
    )


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run options of `args` as settings: {"margin": 0.5, "trade_on_close": False, ...}."""
    return {name: getattr(args, name) for name in RUN_OPTIONS}


def setting_error(key: str, reason: str) -> CommandError:
    """A bad setting as the one-line mistake naming its option: "--margin: must be in ..."."""
    return CommandError(f"--{key.replace('_', '-')}: {reason}")

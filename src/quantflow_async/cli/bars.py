"""`quantflow bars synth`: a seeded random walk of OHLCV bars written as CSV, to try things on."""

from __future__ import annotations

import argparse
import math
import re
from datetime import timedelta
from pathlib import Path

from quantflow_async.cli.parsing import Parser, add_command, add_group, add_output_option
from quantflow_async.errors import InvalidValue

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def interval(text: str) -> timedelta:
    """An argparse type: 30s, 1m, 4h, 1d."""
    match = re.fullmatch(r"([1-9][0-9]{0,5})([smhd])", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an interval such as 1m, 4h or 1d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def synth(args: argparse.Namespace) -> None:
    from quantflow_async.analysis._files import check_output, writing
    from quantflow_async.backtest.bars import synthetic_bars

    if not 1 <= args.count <= 10_000_000:
        raise InvalidValue("count", f"must be from 1 to 10,000,000, got {args.count}")
    if not math.isfinite(args.drift) or abs(args.drift) > 0.1:
        raise InvalidValue("drift", f"must be a number from -0.1 to 0.1, got {args.drift}")
    check_output(args.output)
    bars = synthetic_bars(
        args.count, seed=args.seed, interval=args.interval, drift=args.drift,
        volatility=args.volatility, price=args.price,
    )  # fmt: skip
    target: Path = args.output
    # Written whole or not at all, as every output file is (a new file gets 0666 less the
    # umask, an old one keeps its mode; a FIFO is written through).
    with writing(target) as temporary, temporary.open("w") as file:
        file.write("time,open,high,low,close,volume\n")
        for i in range(len(bars)):
            prices = ",".join(
                f"{float(column[i]):.2f}" for column in (bars.open, bars.high, bars.low, bars.close)
            )
            file.write(f"{bars.time_at(i):%Y-%m-%dT%H:%M:%SZ},{prices},{bars.volume[i]:.2f}\n")
    print(f"wrote {len(bars):,} bars to {target}")


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    verbs = add_group(commands, "bars")
    command = add_command(
        verbs, "synth", "write a seeded random walk of OHLCV bars as CSV (prices in cents)", synth
    )
    add_output_option(command, "the CSV to write")
    command.add_argument("--count", type=int, default=2_000, help="how many bars (2000)")
    command.add_argument("--seed", type=int, default=1, help="the walk's seed (1)")
    command.add_argument(
        "--interval", type=interval, default=timedelta(minutes=1), help="bar spacing (1m)"
    )
    command.add_argument("--price", type=float, default=100.0, help="the first price (100)")
    command.add_argument(
        "--volatility", type=float, default=0.004, help="standard deviation of a bar's log return"
    )
    command.add_argument(
        "--drift",
        type=float,
        default=0.0002,
        help="mean of a bar's log return (0.0002; over many bars prices grow by e**(drift * "
        "count): give 0 for a long file)",
    )

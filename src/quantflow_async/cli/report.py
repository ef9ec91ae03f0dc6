"""`quantflow report BACKTEST_ID -o FILE`: a backtest's price and trades, equity curve and
drawdowns, as a picture (.png, .svg, .pdf) or an interactive page (.html)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quantflow_async.cli.output import reading
from quantflow_async.cli.parsing import COMMANDS, Parser, add_command, add_output_option
from quantflow_async.config import Settings


async def report(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.analysis import check_output, report_format, write_report
    from quantflow_async.database import Database

    # A wrong file name, or a file that cannot be written, is said before the database is read.
    report_format(args.output)
    check_output(args.output)
    async with Database(settings=settings) as db:
        shown = await write_report(db, args.backtest_id, args.output, data=args.data)
    marked = len(shown.buys) + len(shown.sells)
    print(
        f"wrote {args.output}: backtest {shown.backtest.id}, {len(shown.times):,} points of "
        f"{shown.source}, {marked:,} fills marked, max drawdown {shown.max_drawdown_pct:.2f}%"
    )
    if shown.price.candles is None:
        print(
            f"no price panel: {shown.price.reason}; give the bars with --data FILE",
            file=sys.stderr,
        )


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    command = add_command(
        commands,
        "report",
        COMMANDS["report"].summary,
        reading(report),
    )
    command.add_argument("backtest_id", type=int, metavar="BACKTEST_ID", help="the backtest")
    add_output_option(
        command,
        "the report to write: a .png, .svg or .pdf picture, or an .html page to zoom and pan",
    )
    command.add_argument(
        "--data",
        type=Path,
        metavar="FILE",
        help="the bars file the backtest ran on, for the price panel (default: the file its "
        "config names, if it is still there with the same bars)",
    )

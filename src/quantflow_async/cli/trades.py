"""`quantflow trades list|export`: trades by backtest, strategy, symbol and time, a page at a
time or streamed to CSV or Parquet."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from quantflow_async.cli.output import (
    instant,
    is_terminal,
    print_json,
    print_table,
    progress,
    reading,
)
from quantflow_async.cli.parsing import Parser, add_command, add_group, add_output_option
from quantflow_async.cli.stopping import sigterm_as_ctrl_c
from quantflow_async.config import Settings
from quantflow_async.errors import InvalidValue

if TYPE_CHECKING:
    from quantflow_async.database import Database
    from quantflow_async.store.repositories.trades import TradeQuery

# The library's values, repeated for the help texts: importing `quantflow_async.analysis` or the
# trade repository loads numpy and SQLAlchemy, which `--help` must not (a test checks they agree).
FORMATS: Final = ("csv", "parquet")
MAX_PAGE: Final = 100_000

LISTED = ("id", "executed_at", "symbol", "side", "quantity", "price", "fee", "pnl", "backtest_id")


def _filters(args: argparse.Namespace) -> TradeQuery:
    if args.live and args.backtest is not None:
        raise InvalidValue("--live", "cannot go with --backtest: a backtest's fills are never live")
    return {
        "backtest_id": args.backtest,
        "strategy_id": args.strategy,
        "symbol": args.symbol,
        "since": args.since,
        "until": args.until,
        "live": args.live,
    }


async def _check_owners(db: Database, args: argparse.Namespace) -> None:
    """An unknown backtest or strategy id is a mistake to report, not an empty result."""
    if args.backtest is not None:
        await db.backtests.get(args.backtest)
    if args.strategy is not None:
        await db.strategies.get(args.strategy)


async def list_trades(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database

    async with Database(settings=settings) as db:
        await _check_owners(db, args)
        page = await db.trades.list(**_filters(args), after_id=args.after_id, limit=args.limit)
    if args.json:
        print_json(page)
    else:
        print_table(
            LISTED,
            [tuple(getattr(trade, name) for name in LISTED) for trade in page],
            title="trades",
            empty="no trades match",
        )
    if len(page) == args.limit and is_terminal(sys.stderr):
        print(f"more trades follow: add --after-id {page[-1].id}", file=sys.stderr)


async def export(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.analysis import check_output, export_trades, format_of
    from quantflow_async.database import Database

    output: Path = args.output
    chosen = args.format or format_of(output)
    if chosen is None:
        raise InvalidValue(
            "--format", f"cannot tell it from the name {output.name!r}; add --format csv|parquet"
        )
    check_output(output)  # a file that cannot be written is said before the database is read
    started = time.perf_counter()
    async with Database(settings=settings) as db:
        await _check_owners(db, args)
        total = await db.trades.count(**_filters(args)) if is_terminal(sys.stderr) else None
        with progress(f"exporting to {output.name}", total) as advance:
            written = await export_trades(
                db.trades.stream(**_filters(args)),
                output,
                chosen,
                progress=advance,
            )
    seconds = time.perf_counter() - started
    print(f"wrote {written:,} trades to {output} ({chosen}, {seconds:.1f} s)")


def _filter_options(parser: Parser) -> None:
    parser.add_argument("--backtest", type=int, metavar="ID", help="only this backtest's trades")
    parser.add_argument("--strategy", type=int, metavar="ID", help="only this strategy's trades")
    parser.add_argument("--symbol", help="only this symbol's trades")
    parser.add_argument(
        "--since", type=instant, metavar="TIME", help="executed at or after (ISO 8601; UTC if bare)"
    )
    parser.add_argument("--until", type=instant, metavar="TIME", help="executed before this time")
    parser.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        help="only live fills (--live) or only backtests' fills (--no-live); reads by strategy, "
        "symbol or time are indexed on live fills only",
    )


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    verbs = add_group(commands, "trades")

    listing = add_command(
        verbs, "list", "one page of trades in execution order", reading(list_trades)
    )
    _filter_options(listing)
    listing.add_argument(
        "--limit", type=int, default=100, help=f"trades per page, 1 to {MAX_PAGE:,} (default 100)"
    )
    listing.add_argument(
        "--after-id",
        type=int,
        metavar="ID",
        help="the next page: the last id of the one before (the trades after that trade's "
        "time and id, of those the filters keep)",
    )
    listing.add_argument("--json", action="store_true", help="print JSON, every field")

    exporting = add_command(
        verbs,
        "export",
        "stream matching trades to a CSV or Parquet file, at flat memory",
        sigterm_as_ctrl_c(reading(export)),
    )
    _filter_options(exporting)
    exporting.add_argument(
        "--format", choices=FORMATS, help="default: from the file name (.csv, .parquet)"
    )
    add_output_option(
        exporting, "the CSV or Parquet file to write (Parquet needs the analysis extra)"
    )

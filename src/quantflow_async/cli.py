"""The `quantflow` command: a thin shell over the library. User mistakes print one line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from quantflow_async import __version__
from quantflow_async.config import DATABASE_URL_ENV, Settings, redact_url
from quantflow_async.database import Database
from quantflow_async.errors import QuantFlowError


async def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    async with Database(settings=settings) as db:
        await db.migrate()
    print(f"migrated {redact_url(settings.database_url)} to the newest schema")


async def _count_trades(settings: Settings, args: argparse.Namespace) -> None:
    async with Database(settings=settings) as db:
        count = await db.trades.count(backtest_id=args.backtest_id, symbol=args.symbol)
    print(count)


Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quantflow", description="QuantFlow's trade store: migrations and queries."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--database-url",
        help=f"database URL (default: ${DATABASE_URL_ENV}, else sqlite+aiosqlite:///./dev.sqlite3)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate = commands.add_parser("migrate", help="create or upgrade the schema (Alembic head)")
    migrate.set_defaults(run=_migrate)
    count = commands.add_parser("count-trades", help="print how many trades are stored")
    count.add_argument("--backtest-id", type=int, help="only this backtest's trades")
    count.add_argument("--symbol", help="only this symbol's trades")
    count.set_defaults(run=_count_trades)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    run: Command = args.run
    try:
        settings = Settings.from_env(database_url=args.database_url)
        asyncio.run(run(settings, args))
    except (QuantFlowError, ValueError) as exc:
        print(f"quantflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("quantflow: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`quantflow migrate` and `quantflow count-trades`: the schema and a first look at the trades."""

from __future__ import annotations

import argparse

from quantflow_async.cli.parsing import COMMANDS, Parser, add_command, on_database
from quantflow_async.config import Settings, redact_url


async def migrate(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database
    from quantflow_async.store.migrations import head_revision

    async with Database(settings=settings) as db:
        before = await db.migrate()
    head, url = head_revision(), redact_url(settings.database_url)
    if before == head:
        print(f"{url} is at the newest schema already, revision {head}: nothing to do")
    elif before is None:
        print(f"migrated {url} to the newest schema, revision {head}")
    else:
        print(f"migrated {url} from revision {before} to the newest schema, revision {head}")


async def count_trades(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database

    async with Database(settings=settings) as db:
        count = await db.trades.count(backtest_id=args.backtest_id, symbol=args.symbol)
    print(count)


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    add_command(
        commands,
        "migrate",
        COMMANDS["migrate"].summary,
        on_database(migrate, creates_database=True),
    )
    count = add_command(
        commands,
        "count-trades",
        COMMANDS["count-trades"].summary,
        on_database(count_trades, creates_database=False),
    )
    count.add_argument("--backtest-id", type=int, help="only this backtest's trades")
    count.add_argument("--symbol", help="only this symbol's trades")

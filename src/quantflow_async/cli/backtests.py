"""`quantflow backtests list|show|delete`: stored backtests, their metrics and their trades per
symbol; deleting some (by id, by sweep, by status) with their fills, in one transaction."""

from __future__ import annotations

import argparse
import sys
from dataclasses import astuple
from typing import Any

from quantflow_async.cli.output import (
    CommandError,
    counted,
    is_terminal,
    print_fields,
    print_json,
    print_section,
    print_table,
    reading,
)
from quantflow_async.cli.parsing import Parser, add_command, add_group
from quantflow_async.config import Settings
from quantflow_async.records import BACKTEST_STATUSES, Backtest

# The metrics the runner stores that a listing shows; `show` prints every one.
LISTED_METRICS = ("return_pct", "max_drawdown_pct", "sharpe", "trades")
LISTED_HEADERS = ("return %", "max drawdown %", "Sharpe", "trades")


async def list_backtests(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database

    async with Database(settings=settings) as db:
        if args.strategy is not None:
            await db.strategies.get(args.strategy)  # an unknown id is a mistake, not "none"
        if args.sweep is not None:
            await db.sweeps.get(args.sweep)
        found = await db.backtests.list(
            strategy_id=args.strategy, status=args.status, sweep_id=args.sweep
        )
    if args.json:
        # `results` (an equity curve of up to 10,000 points) is left to `backtests show`.
        print_json([{**_fields(b), "metrics": b.metrics} for b in found])
        return
    print_table(
        ["id", "strategy", "name", "status", "start", "end", "capital", *LISTED_HEADERS],
        [(*_summary(b), *_metrics(b)) for b in found],
        title="backtests",
        empty=(
            "no backtests match"
            if (args.strategy, args.status, args.sweep) != (None, None, None)
            else "no backtests yet; `quantflow backtest run` makes one"
        ),
    )


async def show_backtest(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database

    async with Database(settings=settings) as db:
        backtest = await db.backtests.get(args.id)
        per_symbol = await db.trades.summary(backtest_id=backtest.id)
    if args.json:
        print_json(
            {
                **_fields(backtest),
                "metrics": backtest.metrics,
                "results": backtest.results,
                "trades_by_symbol": per_symbol,
            }
        )
        return
    metrics = sorted((backtest.metrics or {}).items())
    print_fields([*_fields(backtest).items(), *metrics], title=f"backtest {backtest.id}")
    print_section(
        ["symbol", "trades", "bought", "sold", "notional", "fees", "realized pnl"],
        [astuple(summary) for summary in per_symbol],
        title="trades by symbol",
        empty="no trades stored for this backtest",
    )


async def delete_backtests(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database
    from quantflow_async.store.repositories.backtests import Selection

    if bool(args.ids) == (args.sweep is not None or args.status is not None):
        raise CommandError("name backtest IDs, or --sweep ID and/or --status S, not both")
    if not args.yes and not is_terminal(sys.stdin):
        raise CommandError("refusing to delete without --yes: there is no terminal to ask on")
    selection = Selection(tuple(args.ids), args.sweep, args.status)
    whole_sweep = args.sweep is not None and args.status is None
    async with Database(settings=settings) as db:
        found = await db.backtests.count_selected(selection)
        if not found.backtests and not whole_sweep:
            raise CommandError(f"nothing to delete: no backtest {_described(args)}")
        what = _with_fills(found.backtests, found.fills)
        if whole_sweep:
            what = f"sweep {args.sweep} with its {what}"
        if not args.yes and not _confirmed(f"delete {what}?"):
            print("nothing deleted", file=sys.stderr)  # the user's own answer: no error
            return
        if whole_sweep:
            deleted = found
            await db.sweeps.delete(args.sweep)
        else:
            deleted = await db.backtests.delete_selected(selection)
    if args.json:
        print_json({"backtests": deleted.backtests, "fills": deleted.fills, "sweep": args.sweep})
        return
    print(f"deleted {_with_fills(deleted.backtests, deleted.fills)}")


def _with_fills(backtests: int, fills: int) -> str:
    """ "2 backtests and their 81 fills", "1 backtest and its 1 fill"."""
    their = "its" if backtests == 1 else "their"
    return f"{counted(backtests, 'backtest')} and {their} {counted(fills, 'fill')}"


def _described(args: argparse.Namespace) -> str:
    """What the selection asked for, after "no backtest": "of sweep 7 is failed"."""
    if args.ids:
        return "has one of those ids"
    of_sweep = f"of sweep {args.sweep} " if args.sweep is not None else ""
    return f"{of_sweep}is {args.status}"


def _confirmed(question: str) -> bool:
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _fields(backtest: Backtest) -> dict[str, Any]:
    return {
        "id": backtest.id,
        "strategy_id": backtest.strategy_id,
        "sweep_id": backtest.sweep_id,
        "name": backtest.name,
        "status": backtest.status,
        "start_date": backtest.start_date,
        "end_date": backtest.end_date,
        "initial_capital": backtest.initial_capital,
        "config": backtest.config,
        "created_at": backtest.created_at,
        "updated_at": backtest.updated_at,
    }


def _summary(backtest: Backtest) -> tuple[Any, ...]:
    return (
        backtest.id,
        backtest.strategy_id,
        backtest.name,
        backtest.status,
        backtest.start_date,
        backtest.end_date,
        backtest.initial_capital,
    )


def _metrics(backtest: Backtest) -> list[Any]:
    metrics = backtest.metrics or {}
    return [metrics.get(name) for name in LISTED_METRICS]


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    verbs = add_group(commands, "backtests")

    listing = add_command(verbs, "list", "list backtests, oldest first", reading(list_backtests))
    listing.add_argument("--strategy", type=int, metavar="ID", help="only this strategy's")
    listing.add_argument("--status", choices=BACKTEST_STATUSES, help="only those in this status")
    listing.add_argument("--sweep", type=int, metavar="ID", help="only this sweep's")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")

    show = add_command(
        verbs, "show", "show a backtest: metrics and trades per symbol", reading(show_backtest)
    )
    show.add_argument("id", type=int, metavar="ID", help="the backtest's id")
    show.add_argument("--json", action="store_true", help="print JSON, results included")

    deleting = add_command(
        verbs,
        "delete",
        "delete backtests with their fills, in one transaction: these IDs, or those of a sweep "
        "(--sweep alone deletes the sweep too) and/or in a status",
        reading(delete_backtests),
    )
    deleting.add_argument("ids", type=int, nargs="*", metavar="ID", help="backtests' ids")
    deleting.add_argument("--sweep", type=int, metavar="ID", help="the backtests of this sweep")
    deleting.add_argument("--status", choices=BACKTEST_STATUSES, help="those in this status")
    deleting.add_argument("--yes", action="store_true", help="delete without asking")
    deleting.add_argument("--json", action="store_true", help="print what was deleted as JSON")

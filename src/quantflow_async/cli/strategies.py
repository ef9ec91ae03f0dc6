"""`quantflow strategies list|show|create`: the strategies a backtest or a bot trades under;
`quantflow strategies available`: the strategy classes a backtest can run."""

from __future__ import annotations

import argparse

from quantflow_async.cli.output import (
    json_object,
    print_fields,
    print_json,
    print_table,
    reading,
)
from quantflow_async.cli.parsing import Parser, add_command, add_group
from quantflow_async.config import Settings
from quantflow_async.records import STRATEGY_STATUSES, Strategy


async def list_strategies(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database

    async with Database(settings=settings) as db:
        found = await db.strategies.list(status=args.status)
    if args.json:
        print_json(found)
        return
    print_table(
        ["id", "name", "status", "description", "config", "created"],
        [(s.id, s.name, s.status, s.description, s.config, s.created_at) for s in found],
        title="strategies",
        empty="no strategies yet; make one with `quantflow strategies create NAME`",
    )


async def show_strategy(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database

    async with Database(settings=settings) as db:
        strategy = await db.strategies.get(args.id)
        backtests = await db.backtests.list(strategy_id=strategy.id)
    if args.json:
        print_json({**_fields(strategy), "backtests": [b.id for b in backtests]})
        return
    print_fields(
        [*_fields(strategy).items(), ("backtests", ", ".join(str(b.id) for b in backtests))],
        title=f"strategy {strategy.id}",
    )


async def create_strategy(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database

    async with Database(settings=settings) as db:
        strategy = await db.strategies.create(
            name=args.name, config=args.config, description=args.description, status=args.status
        )
    if args.json:
        print_json(strategy)
        return
    print(f"created strategy {strategy.id} {strategy.name!r}")


def _fields(strategy: Strategy) -> dict[str, object]:
    return {
        "id": strategy.id,
        "name": strategy.name,
        "status": strategy.status,
        "description": strategy.description,
        "config": strategy.config,
        "metrics": strategy.metrics,
        "created_at": strategy.created_at,
        "updated_at": strategy.updated_at,
    }


def available(args: argparse.Namespace) -> None:
    from quantflow_async.backtest.strategies import STRATEGIES, strategy_class
    from quantflow_async.backtest.strategy_reference import installed_strategies
    from quantflow_async.errors import QuantFlowError

    found: list[dict[str, object]] = [
        {"name": name, "source": "built-in", "parameters": _parameters(cls)}
        for name, cls in sorted(STRATEGIES.items())
    ]
    for name, reference in sorted(installed_strategies().items()):
        entry: dict[str, object] = {"name": name, "source": reference}
        try:
            entry["parameters"] = _parameters(strategy_class(name))
        except QuantFlowError as exc:
            entry["error"] = str(exc)
        found.append(entry)
    if args.json:
        print_json(found)
        return
    rows = [
        (entry["name"], entry["source"], entry.get("error") or _shown(entry.get("parameters")))
        for entry in found
    ]
    print_table(("name", "source", "parameters"), rows)


def _parameters(cls: type) -> dict[str, dict[str, object]]:
    kinds: dict[str, type] = getattr(cls, "parameters", {})
    return {
        name: {"type": kind.__name__, "default": getattr(cls, name, None)}
        for name, kind in kinds.items()
    }


def _shown(parameters: object) -> str:
    if not isinstance(parameters, dict):
        return ""
    return ", ".join(
        f"{name}: {spec['type']} = {spec['default']}" for name, spec in parameters.items()
    )


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    verbs = add_group(commands, "strategies")

    listing = add_command(
        verbs, "list", "list the strategies, oldest first", reading(list_strategies)
    )
    listing.add_argument("--status", choices=STRATEGY_STATUSES, help="only those in this status")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")

    show = add_command(verbs, "show", "show one strategy and its backtests", reading(show_strategy))
    show.add_argument("id", type=int, metavar="ID", help="the strategy's id")
    show.add_argument("--json", action="store_true", help="print JSON")

    offered = add_command(
        verbs,
        "available",
        "list the strategy classes a backtest can run: built-in and installed ones (entry-point "
        "group quantflow.strategies), with their parameters; any FILE.py:CLASS or "
        "package.module:CLASS runs too",
        available,
    )
    offered.add_argument("--json", action="store_true", help="print JSON instead of a table")

    create = add_command(verbs, "create", "store a new strategy", reading(create_strategy))
    create.add_argument("name", metavar="NAME", help="a name no other strategy has")
    create.add_argument(
        "--config",
        type=json_object,
        default={},
        metavar="JSON",
        help="""its parameters as a JSON object, e.g. '{"fast": 10}', or @file.json""",
    )
    create.add_argument("--description", metavar="TEXT", help="what the strategy does")
    create.add_argument(
        "--status", choices=STRATEGY_STATUSES, default="inactive", help="default: inactive"
    )
    create.add_argument("--json", action="store_true", help="print the stored strategy as JSON")

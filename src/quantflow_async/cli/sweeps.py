"""`quantflow sweeps list|show`: stored sweeps, their backtests counted by status, the best
configs by a metric and the first failures, each read with one aggregating query."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Final

from quantflow_async.cli.metric_option import ranking_metric, shown_metrics
from quantflow_async.cli.output import (
    error_text,
    print_fields,
    print_json,
    print_section,
    print_table,
    reading,
)
from quantflow_async.cli.parsing import Parser, add_command, add_group
from quantflow_async.config import Settings

if TYPE_CHECKING:
    from quantflow_async.records import Backtest
    from quantflow_async.sweep_records import Sweep

STATUSES: Final = ("completed", "failed", "cancelled", "running", "pending")
"""The order in which a sweep's backtests are counted."""
SHOWN_FAILURES: Final = 5


async def list_sweeps(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database

    async with Database(settings=settings) as db:
        found = await db.sweeps.list()
    if args.json:
        print_json(
            [{**_fields(s.sweep), "backtests": s.total, "counts": dict(s.counts)} for s in found]
        )
        return
    print_table(
        ["id", "strategy", "kind", "status", "backtests", *STATUSES, "created"],
        [
            (
                s.sweep.id,
                s.sweep.strategy,
                s.sweep.kind,
                s.sweep.status,
                s.total,
                *(s.counts.get(status, 0) for status in STATUSES),
                s.sweep.created_at,
            )  # fmt: skip
            for s in found
        ],
        title="sweeps",
        empty="no sweeps yet; `quantflow sweep` runs one",
    )


async def show_sweep(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.database import Database

    async with Database(settings=settings) as db:
        sweep = await db.sweeps.get(args.id)
        counts = await db.sweeps.counts(sweep.id)
        best = await db.sweeps.best(sweep.id, args.by, limit=args.top, highest=not args.lowest)
        failures = await db.sweeps.failures(sweep.id, limit=SHOWN_FAILURES)
    if args.json:
        print_json(
            {
                **_fields(sweep),
                "counts": counts,
                "ranked_by": args.by,
                "best": [_ranked(b, args.by) for b in best],
                "failures": [_failure(b) for b in failures],
            }
        )
        return
    print_fields(
        [
            *_fields(sweep).items(),
            ("backtests", sum(counts.values())),
            *((status, counts.get(status, 0)) for status in STATUSES),
        ],
        title=f"sweep {sweep.id}",
    )
    order = "lowest" if args.lowest else "best"
    metrics = shown_metrics(args.by)
    print_section(
        ["rank", "backtest", "data", "parameters", *metrics],
        [
            [rank, b.id, _symbol(b), _parameters(b), *((b.metrics or {}).get(m) for m in metrics)]
            for rank, b in enumerate(best, start=1)
        ],
        title=f"the {order} {len(best)} by {args.by}",
        empty="no backtest of it completed",
    )
    print_section(
        ["backtest", "data", "parameters", "error"],
        [
            [f["backtest_id"], f["data"], f["parameters"], f["error"]]
            for f in map(_failure, failures)
        ],
        title=f"the first {len(failures)} failures",
        empty="no backtest of it failed",
    )


def _fields(sweep: Sweep) -> dict[str, Any]:
    return {
        "id": sweep.id,
        "strategy_id": sweep.strategy_id,
        "strategy": sweep.strategy,
        "kind": sweep.kind,
        "name": sweep.name,
        "status": sweep.status,
        "space": sweep.space,
        "constraint": sweep.constraints,
        "options": sweep.options,
        "datasets": sweep.datasets,
        "created_at": sweep.created_at,
        "finished_at": sweep.finished_at,
    }


def _symbol(backtest: Backtest) -> Any:
    return (backtest.config or {}).get("symbol")


def _parameters(backtest: Backtest) -> str:
    parameters = dict((backtest.config or {}).get("parameters") or {})
    return " ".join(f"{key}={value}" for key, value in parameters.items())


def _ranked(backtest: Backtest, metric: str) -> dict[str, Any]:
    metrics = backtest.metrics or {}
    return {
        "backtest_id": backtest.id,
        "data": _symbol(backtest),
        "parameters": (backtest.config or {}).get("parameters"),
        **{key: metrics.get(key) for key in shown_metrics(metric)},
    }


def _failure(backtest: Backtest) -> dict[str, Any]:
    return {
        "backtest_id": backtest.id,
        "data": _symbol(backtest),
        "parameters": _parameters(backtest),
        "error": error_text(backtest),
    }


def _positive(text: str) -> int:
    """An argument type: a whole number >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    verbs = add_group(commands, "sweeps")

    listing = add_command(
        verbs, "list", "list sweeps, oldest first, with their backtests by status",
        reading(list_sweeps),
    )  # fmt: skip
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")

    show = add_command(
        verbs,
        "show",
        "show a sweep: what it ran, its backtests by status, the best configs, the first failures",
        reading(show_sweep),
    )
    show.add_argument("id", type=int, metavar="ID", help="the sweep's id")
    show.add_argument(
        "--by",
        type=ranking_metric,
        default="return_pct",
        metavar="METRIC",
        help="rank by this stored metric, e.g. sharpe, cagr_pct (return_pct)",
    )
    show.add_argument(
        "--lowest", action="store_true", help="lowest first, for a metric such as a drawdown"
    )
    show.add_argument(
        "--top", type=_positive, default=10, metavar="K", help="how many to show (10)"
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of tables")

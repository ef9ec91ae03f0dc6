"""What a sweep command shows: a progress bar while it runs, then the best configs by a metric
(ranked in SQL), the first failures and a summary, as a table or one JSON object. Shared by
`quantflow sweep` and `quantflow sweep resume`; `quantflow sweeps show` ranks with the same
`--by` (`metric_option.ranking_metric`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from quantflow_async.cli.backtest import stored_strategy_id
from quantflow_async.cli.metric_option import shown_metrics
from quantflow_async.cli.output import (
    counted,
    failed_runs,
    plain,
    print_table,
    progress_bar,
    say,
)
from quantflow_async.config import Settings

if TYPE_CHECKING:
    from quantflow_async.backtest import Bars, SweepProgress, SweepResult
    from quantflow_async.records import Backtest

SHOWN_FAILURES: Final = 3
"""How many failed backtests a sweep names, with their errors, before it exits non-zero."""


class SweepJob(NamedTuple):
    """What a sweep command runs: from the command line, or from a stored sweep."""

    strategy: str
    grid: Any
    constraint: str | None
    datasets: dict[str, Bars]
    options: dict[str, Any]
    configs: int


async def run_and_report(
    settings: Settings, args: argparse.Namespace, job: SweepJob, *, resume: int | None = None
) -> None:
    """Run the sweep (or resume it), then show its best configs and its first failures."""
    from quantflow_async.analysis import write_report
    from quantflow_async.backtest import run_sweep
    from quantflow_async.database import Database

    metric, lowest = args.by, getattr(args, "lowest", False)
    order = "lowest" if lowest else "best"
    async with Database(settings=settings) as db:
        strategy_id = await stored_strategy_id(db, job.strategy)
        with _progress_bar(job.configs * len(job.datasets)) as show, _stop_told() as seen:

            def progress(now: SweepProgress) -> None:
                seen[:] = [now]
                if show is not None:
                    show(now)

            result = await run_sweep(
                db, job.strategy, job.grid, job.datasets, strategy_id=strategy_id,
                workers=args.workers, max_worker_restarts=args.max_worker_restarts,
                progress=progress, constraint=job.constraint, resume=resume,
                start_method=getattr(args, "start_method", "spawn"), **job.options,
            )  # fmt: skip
        talk = say if not args.json else _quiet
        if result.excluded:
            talk(f"{len(result.excluded)} configs left out by --constraint {job.constraint!r}")
        talk(_summary(job.strategy, result))
        sweep_id = int(result.sweep_id or 0)  # always set by run_sweep
        best = await db.sweeps.best(sweep_id, metric, limit=args.top, highest=not lowest)
        failed = await db.sweeps.failures(sweep_id, limit=SHOWN_FAILURES)
        if args.report is not None and best:
            talk(f"drawing backtest {best[0].id}, the {order} by {metric}, into {args.report}")
            await write_report(db, best[0].id, args.report)
    failures = [_failure(b) for b in failed]
    total = len(result.backtest_ids)
    if args.json:
        document = _document(args, job.strategy, strategy_id, result, metric, best, failures)
        document["excluded"] = list(result.excluded)
        print(json.dumps(plain(document), separators=(",", ":")), flush=True)
    else:
        _print_best(best, metric, total, order)
    if result.failed:
        raise failed_runs(failures, result.failed, total, "backtest")


def ranked(backtests: Sequence[Backtest], metric: str) -> list[Backtest]:
    """The completed backtests, best `metric` first; a backtest without a value for it last."""

    def key(backtest: Backtest) -> float:
        value = (backtest.metrics or {}).get(metric)
        if isinstance(value, str):  # a float too large for the store, kept as its repr
            with contextlib.suppress(ValueError):
                value = float(value)
        return -float(value) if isinstance(value, int | float) else math.inf

    return sorted((b for b in backtests if b.status == "completed"), key=key)


def _failure(backtest: Backtest) -> dict[str, Any]:
    """A failed backtest's id and its error on one line: "Type: message"."""
    error = (backtest.results or {}).get("error") or {}
    message = " ".join(str(error.get("message", "")).split())
    return {"backtest_id": backtest.id, "error": f"{error.get('type', 'Error')}: {message}"}


@contextlib.contextmanager
def _stop_told() -> Iterator[list[SweepProgress]]:
    """Where the sweep was when Ctrl-C or SIGTERM stopped it, and how to go on, on stderr:
    from the progress the block left in the list (nothing before the first one)."""
    import asyncio  # here, not at the top: a command's --help never loads the event loop

    seen: list[SweepProgress] = []
    try:
        yield seen
    except (KeyboardInterrupt, asyncio.CancelledError):
        last = seen[-1] if seen else None
        if last is not None and last.sweep_id is not None:
            say(
                f"sweep {last.sweep_id} stopped: {last.done} of {last.total} backtests "
                f"finished; `quantflow sweep resume {last.sweep_id}` runs the rest"
            )
        raise


@contextlib.contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[SweepProgress], None] | None]:
    """A bar of backtests done with the fills stored so far, on stderr when it is a terminal."""
    shown = ("{task.fields[fills]:>11,} fills stored",)
    with progress_bar("backtests", total, shown=shown, fills=0) as update:
        if update is None:
            yield None
            return

        def show(progress: SweepProgress) -> None:
            update(completed=progress.done, fills=progress.fills_stored)

        yield show


def _row(rank: int, backtest: Backtest, shown: Sequence[str]) -> list[Any]:
    config = backtest.config or {}
    metrics = backtest.metrics or {}
    parameters = " ".join(f"{k}={v}" for k, v in dict(config.get("parameters", {})).items())
    return [rank, backtest.id, config.get("symbol"), parameters] + [metrics.get(k) for k in shown]


def _print_best(best: Sequence[Backtest], metric: str, total: int, order: str = "best") -> None:
    shown = shown_metrics(metric)
    print_table(
        ["rank", "backtest", "data", "parameters", *shown],
        [_row(rank, backtest, shown) for rank, backtest in enumerate(best, start=1)],
        title=f"the {order} {len(best)} of {total} backtests by {metric}",
        empty="no backtest completed",
    )


def _summary(strategy: str, result: SweepResult) -> str:
    rate = result.fills_stored / result.seconds if result.seconds > 0 else 0.0
    failed = f", {result.failed} failed" if result.failed else ""
    before = f" ({result.skipped} of them before this resume)" if result.skipped else ""
    return (
        f"sweep {result.sweep_id}, {strategy}: {counted(result.completed, 'backtest')} completed"
        f"{before}{failed}, "
        f"{counted(result.fills_stored, 'fill')} stored in {result.seconds:.1f} s "
        f"({rate:,.0f} fills/s, {counted(result.workers, 'worker process', 'worker processes')})"
    )


def _quiet(line: str) -> None:
    """--json: stdout is the object, stderr stays quiet (but for the bar on a terminal)."""


def _document(
    args: argparse.Namespace,
    strategy: str,
    strategy_id: int,
    result: SweepResult,
    metric: str,
    best: Sequence[Backtest],
    failures: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "sweep_id": result.sweep_id,
        "strategy": strategy,
        "strategy_id": strategy_id,
        "backtest_ids": list(result.backtest_ids),
        "skipped": result.skipped,
        "completed": result.completed,
        "failed": result.failed,
        "fills_stored": result.fills_stored,
        "seconds": round(result.seconds, 3),
        "workers": result.workers,
        "ranked_by": metric,
        "best": [
            {
                "backtest_id": backtest.id,
                "data": (backtest.config or {}).get("symbol"),
                "parameters": (backtest.config or {}).get("parameters"),
                **{key: (backtest.metrics or {}).get(key) for key in shown_metrics(metric)},
            }
            for backtest in best
        ],
        "report": None if args.report is None or not best else str(args.report),
        "failures": list(failures),
    }

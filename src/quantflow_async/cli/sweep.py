"""`quantflow sweep`: a grid of backtests in worker processes, then a table of the best configs.

Every input mistake (strategy, grid, data files, report name) is found before the database is
opened; the sweep itself is `run_sweep`, whose Ctrl-C keeps committed fills and marks the
rest cancelled.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from quantflow_async.cli.app import COMMANDS, Parser, add_command
from quantflow_async.cli.backtest import STRATEGY_NAMES, check_run, stored_strategy_id
from quantflow_async.cli.output import (
    CommandError,
    is_terminal,
    json_grid,
    plain,
    print_table,
    reading,
)
from quantflow_async.cli.stopping import sigterm_as_ctrl_c
from quantflow_async.config import Settings

if TYPE_CHECKING:
    from quantflow_async.backtest import Bars, SweepProgress, SweepResult
    from quantflow_async.records import Backtest

RANKINGS: Final = {"return": "return_pct", "sharpe": "sharpe"}
"""`--by` and the metric it ranks by, highest first."""
SHOWN: Final = ("return_pct", "sharpe", "max_drawdown_pct", "win_rate_pct", "trades")
"""The metrics of each row of the table and of `best` in the JSON."""
SHOWN_FAILURES: Final = 3
"""How many failed backtests a sweep names, with their errors, before it exits non-zero."""


async def sweep(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.analysis import write_report
    from quantflow_async.backtest import expand_grid, run_sweep
    from quantflow_async.backtest.constraints import split_configs
    from quantflow_async.database import Database

    # Every mistake in the input is found before the database is opened.
    grid = _grid(args.grid)
    configs = expand_grid(grid)
    if not configs:
        raise CommandError("--grid has no config to run: give every key at least one value")
    excluded: list[dict[str, Any]] = []
    if args.constraint is not None:
        configs, excluded = split_configs(configs, args.constraint)
        grid = configs
    for config in configs:
        check_run(args.strategy, config, cash=args.cash, commission=args.commission)
    if args.report is not None:
        _check_report(args.report)
    datasets = _datasets(args.data)
    metric = RANKINGS[args.by]
    async with Database(settings=settings) as db:
        strategy_id = await stored_strategy_id(db, args.strategy)
        with _progress_bar(len(configs) * len(datasets)) as show:
            result = await run_sweep(
                db,
                args.strategy,
                grid,
                datasets,
                strategy_id=strategy_id,
                workers=args.workers,
                max_worker_restarts=args.max_worker_restarts,
                cash=args.cash,
                commission=args.commission,
                progress=show,
            )
        talk = _say if not args.json else _quiet
        if excluded:
            talk(f"{len(excluded)} configs left out by --constraint {args.constraint!r}")
        talk(_summary(args.strategy, result))
        backtests = [await db.backtests.get(i) for i in result.backtest_ids]
        best = ranked(backtests, metric)[: args.top]
        if args.report is not None and best:
            talk(f"drawing backtest {best[0].id}, the best by {metric}, into {args.report}")
            await write_report(db, best[0].id, args.report)
    failures = [_failure(b) for b in backtests if b.status == "failed"][:SHOWN_FAILURES]
    if args.json:
        document = _document(args, strategy_id, result, metric, best, failures)
        document["excluded"] = excluded
        print(json.dumps(plain(document), separators=(",", ":")), flush=True)
    else:
        _print_best(best, metric, len(backtests))
    if result.failed:
        for failure in failures:
            _say(f"backtest {failure['backtest_id']} failed: {failure['error']}")
        raise CommandError(
            f"{result.failed} of {len(backtests)} backtests failed (the first "
            f"{len(failures)} above; `quantflow backtests show ID` gives the whole error)"
        )


def ranked(backtests: Sequence[Backtest], metric: str) -> list[Backtest]:
    """The completed backtests, best `metric` first; a backtest without a value for it last."""

    def key(backtest: Backtest) -> float:
        value = (backtest.metrics or {}).get(metric)
        if isinstance(value, str):  # a float too large for the store, kept as its repr
            with contextlib.suppress(ValueError):
                value = float(value)
        return -float(value) if isinstance(value, int | float) else math.inf

    return sorted((b for b in backtests if b.status == "completed"), key=key)


def _grid(document: Mapping[str, Any] | list[dict[str, Any]]) -> Any:
    """Each parameter's values (a list as given, a single value as a list of one), or the
    list of configs as given."""
    if isinstance(document, list):
        return document
    return {key: value if isinstance(value, list) else [value] for key, value in document.items()}


def _failure(backtest: Backtest) -> dict[str, Any]:
    """A failed backtest's id and its error on one line: "Type: message"."""
    error = (backtest.results or {}).get("error") or {}
    message = " ".join(str(error.get("message", "")).split())
    return {"backtest_id": backtest.id, "error": f"{error.get('type', 'Error')}: {message}"}


def _check_report(path: Path) -> None:
    from quantflow_async.analysis import INSTALL_HINT, report_format

    page = report_format(path) == "html"
    if not path.parent.is_dir():
        raise CommandError(f"cannot write {path}: the folder {path.parent} does not exist")
    try:  # a file of our own in the folder, now: the report is drawn after the whole sweep
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".check"):
            pass
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from exc
    needed = "bokeh" if page else "matplotlib"
    if importlib.util.find_spec(needed) is None:
        raise CommandError(f"--report needs {needed}, which is not installed: {INSTALL_HINT}")


def _datasets(files: Sequence[str]) -> dict[str, Bars]:
    """Each file's bars under its symbol: the file's name, upper case (goog.csv is GOOG)."""
    from quantflow_async.backtest import read_bars

    datasets: dict[str, Bars] = {}
    for file in files:
        symbol = Path(file).stem.upper()
        if symbol in datasets:
            raise CommandError(
                f"two --data files are named {symbol}; the file name is the symbol, "
                "so give each data set a name of its own"
            )
        datasets[symbol] = read_bars(file)
    return datasets


@contextlib.contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[SweepProgress], None] | None]:
    """A bar of backtests done with the fills stored so far, on stderr when it is a terminal."""
    if not is_terminal(sys.stderr):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("backtests"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fills]:>11,} fills stored"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=sys.stderr)) as bar:
        task = bar.add_task("sweep", total=total, fills=0)

        def show(progress: SweepProgress) -> None:
            bar.update(task, completed=progress.done, fills=progress.fills_stored)

        yield show


def _row(rank: int, backtest: Backtest) -> list[Any]:
    config = backtest.config or {}
    metrics = backtest.metrics or {}
    parameters = " ".join(f"{k}={v}" for k, v in dict(config.get("parameters", {})).items())
    return [rank, backtest.id, config.get("symbol"), parameters] + [metrics.get(k) for k in SHOWN]


def _print_best(best: Sequence[Backtest], metric: str, total: int) -> None:
    print_table(
        ["rank", "backtest", "data", "parameters", *SHOWN],
        [_row(rank, backtest) for rank, backtest in enumerate(best, start=1)],
        title=f"the best {len(best)} of {total} backtests by {metric}",
        empty="no backtest completed",
    )


def _summary(strategy: str, result: SweepResult) -> str:
    rate = result.fills_stored / result.seconds if result.seconds > 0 else 0.0
    failed = f", {result.failed} failed" if result.failed else ""
    return (
        f"{strategy}: {result.completed} backtests completed{failed}, "
        f"{result.fills_stored:,} fills stored in {result.seconds:.1f} s "
        f"({rate:,.0f} fills/s, {result.workers} worker processes)"
    )


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _quiet(line: str) -> None:
    """--json: stdout is the object, stderr stays quiet (but for the bar on a terminal)."""


def _document(
    args: argparse.Namespace,
    strategy_id: int,
    result: SweepResult,
    metric: str,
    best: Sequence[Backtest],
    failures: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "strategy": args.strategy,
        "strategy_id": strategy_id,
        "backtest_ids": list(result.backtest_ids),
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
                **{key: (backtest.metrics or {}).get(key) for key in SHOWN},
            }
            for backtest in best
        ],
        "report": None if args.report is None or not best else str(args.report),
        "failures": list(failures),
    }


def _at_least(least: int) -> Callable[[str], int]:
    """An argument type: a whole number >= `least`."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {least}, got {text!r}")
        return value

    return whole


_positive = _at_least(1)


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    command = add_command(
        commands,
        "sweep",
        COMMANDS["sweep"].summary,
        sigterm_as_ctrl_c(reading(sweep)),
    )
    command.add_argument("strategy", metavar="STRATEGY", help=f"one of {', '.join(STRATEGY_NAMES)}")
    command.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="FILE",
        help="OHLCV bars, CSV or Parquet; repeat for more data sets (the file name is the symbol)",
    )
    command.add_argument(
        "--grid",
        type=json_grid,
        required=True,
        metavar="JSON",
        help="""each parameter's values, e.g. '{"fast": [5, 10], "slow": [20, 50]}', or a """
        """list of configs, e.g. '[{"fast": 5, "slow": 20}]', or @grid.json; every config """
        "runs on every data set",
    )
    command.add_argument(
        "--constraint",
        metavar="EXPR",
        help="run only the configs for which EXPR holds, e.g. 'fast < slow' or "
        "'slow >= 2 * fast and fast != 7': the parameters, numbers, comparisons, "
        "+ - * / // %% **, and/or/not; the rest are counted, listed with --json, not stored",
    )
    command.add_argument("--cash", type=float, default=10_000.0, help="starting cash (10000)")
    command.add_argument(
        "--commission", type=float, default=0.0, metavar="RATE", help="fraction of notional (0)"
    )
    command.add_argument(
        "--workers", type=_positive, default=2, metavar="N", help="worker processes (2)"
    )
    command.add_argument(
        "--max-worker-restarts",
        type=_at_least(0),
        default=3,
        metavar="N",
        help="worker processes started in the place of dead ones, at most (3)",
    )
    command.add_argument(
        "--top", type=_positive, default=10, metavar="K", help="how many configs to show (10)"
    )
    command.add_argument(
        "--by",
        choices=sorted(RANKINGS),
        default="return",
        help="rank by total return (return_pct, the default) or by Sharpe ratio",
    )
    command.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="also draw the best backtest's report, as `quantflow report` does (.png, .svg, "
        ".pdf, or an interactive .html page)",
    )
    command.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: the backtest ids, counts, and the best configs",
    )

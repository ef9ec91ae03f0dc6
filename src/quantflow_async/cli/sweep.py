"""`quantflow sweep`: a grid of backtests in worker processes, then a table of the best configs;
`quantflow sweep resume ID` runs a stored sweep's unfinished jobs again.

Every input mistake (strategy, grid, data files, report name) is found before the database is
opened; the sweep itself is `run_sweep`, whose Ctrl-C keeps committed fills, marks the rest
cancelled and the sweep interrupted, for `sweep resume` to finish. More verbs of `sweep` come
from the modules of `VERB_MODULES`.
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
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from quantflow_async.cli.app import COMMANDS, Parser, add_command, add_verbs
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
    from quantflow_async.database import Database
    from quantflow_async.records import Backtest
    from quantflow_async.sweep_records import Sweep

RANKINGS: Final = {"return": "return_pct", "sharpe": "sharpe"}
"""`--by` and the metric it ranks by, highest first."""
SHOWN: Final = ("return_pct", "sharpe", "max_drawdown_pct", "win_rate_pct", "trades")
"""The metrics of each row of the table and of `best` in the JSON."""
SHOWN_FAILURES: Final = 3
"""How many failed backtests a sweep names, with their errors, before it exits non-zero."""
VERB_MODULES: Final[tuple[str, ...]] = ()
"""Modules of `quantflow_async.cli` that add verbs to `quantflow sweep` beside run and resume:
each has `register_verbs(verbs)`, which adds its own with `add_command(verbs, ...)`."""


async def sweep(settings: Settings, args: argparse.Namespace) -> None:
    from quantflow_async.backtest import expand_grid
    from quantflow_async.backtest.constraints import split_configs

    # Every mistake in the input is found before the database is opened.
    grid = _grid(args.grid)
    configs = expand_grid(grid)
    if not configs:
        raise CommandError("--grid has no config to run: give every key at least one value")
    if args.constraint is not None:
        configs, _ = split_configs(configs, args.constraint)
    options = {"cash": args.cash, "commission": args.commission}
    for config in configs:
        check_run(args.strategy, config, **options)
    if args.report is not None:
        _check_report(args.report)
    datasets = _datasets(args.data)
    job = SweepJob(args.strategy, grid, args.constraint, datasets, options, len(configs))
    await run_and_report(settings, args, job)


async def resume(settings: Settings, args: argparse.Namespace) -> None:
    """`quantflow sweep resume ID`: the sweep's jobs that did not complete, run again."""
    from quantflow_async.database import Database

    if args.report is not None:
        _check_report(args.report)
    async with Database(settings=settings) as db:
        stored = await db.sweeps.get(args.id)
        configs = await _stored_configs(db, args.id)
    datasets = _stored_datasets(stored)
    job = SweepJob(stored.strategy, configs, None, datasets, dict(stored.options), len(configs))
    await run_and_report(settings, args, job, resume=stored.id)


def _stored_datasets(stored: Sweep) -> dict[str, Bars]:
    """The sweep's data sets, read again from their files (their fingerprints are checked
    by the sweep itself)."""
    datasets: dict[str, Bars] = {}
    for document in stored.datasets:
        source = Path(str(document["source"]))
        if not source.is_file():
            raise CommandError(
                f"sweep {stored.id}'s data set {document['name']} was read from "
                f"{document['source']}, which is not a file here; resume it from Python: "
                f"run_sweep(..., resume={stored.id}) with the same bars"
            )
        datasets[str(document["name"])] = _read(source)
    return datasets


async def _stored_configs(db: Database, sweep_id: int) -> list[dict[str, Any]]:
    """The sweep's configs as its stored backtests ran them (each once, in job order): the
    constraint is applied already, a callable one too."""
    configs: dict[str, dict[str, Any]] = {}
    for backtest in await db.backtests.list(sweep_id=sweep_id):
        parameters = dict((backtest.config or {}).get("parameters") or {})
        configs.setdefault(json.dumps(parameters, sort_keys=True), parameters)
    if not configs:
        raise CommandError(f"sweep {sweep_id} has no backtest left to resume")
    return list(configs.values())


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

    metric = RANKINGS[args.by]
    async with Database(settings=settings) as db:
        strategy_id = await stored_strategy_id(db, job.strategy)
        with _progress_bar(job.configs * len(job.datasets)) as show:
            result = await run_sweep(
                db, job.strategy, job.grid, job.datasets, strategy_id=strategy_id,
                workers=args.workers, max_worker_restarts=args.max_worker_restarts,
                progress=show, constraint=job.constraint, resume=resume, **job.options,
            )  # fmt: skip
        talk = _say if not args.json else _quiet
        if result.excluded:
            talk(f"{len(result.excluded)} configs left out by --constraint {job.constraint!r}")
        talk(_summary(job.strategy, result))
        sweep_id = int(result.sweep_id or 0)  # always set by run_sweep
        best = await db.sweeps.best(sweep_id, metric, limit=args.top)
        failed = await db.sweeps.failures(sweep_id, limit=SHOWN_FAILURES)
        if args.report is not None and best:
            talk(f"drawing backtest {best[0].id}, the best by {metric}, into {args.report}")
            await write_report(db, best[0].id, args.report)
    failures = [_failure(b) for b in failed]
    total = len(result.backtest_ids)
    if args.json:
        document = _document(args, job.strategy, strategy_id, result, metric, best, failures)
        document["excluded"] = list(result.excluded)
        print(json.dumps(plain(document), separators=(",", ":")), flush=True)
    else:
        _print_best(best, metric, total)
    if result.failed:
        for failure in failures:
            _say(f"backtest {failure['backtest_id']} failed: {failure['error']}")
        raise CommandError(
            f"{result.failed} of {total} backtests failed (the first "
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
    datasets: dict[str, Bars] = {}
    for file in files:
        symbol = Path(file).stem.upper()
        if symbol in datasets:
            raise CommandError(
                f"two --data files are named {symbol}; the file name is the symbol, "
                "so give each data set a name of its own"
            )
        datasets[symbol] = _read(Path(file))
    return datasets


def _read(path: Path) -> Bars:
    """The bars of `path`, their source named absolute: the sweep's row keeps it, and a
    resumed sweep reads the file again from any folder."""
    import dataclasses

    from quantflow_async.backtest import read_bars

    return dataclasses.replace(read_bars(path), source=str(path.resolve()))


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
    before = f" ({result.skipped} of them before this resume)" if result.skipped else ""
    return (
        f"sweep {result.sweep_id}, {strategy}: {result.completed} backtests completed"
        f"{before}{failed}, "
        f"{result.fills_stored:,} fills stored in {result.seconds:.1f} s "
        f"({rate:,.0f} fills/s, {result.workers} worker processes)"
    )


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


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
    group = add_command(commands, "sweep", COMMANDS["sweep"].summary, None)
    verbs = add_verbs(group, default="run")
    command = add_command(
        verbs,
        "run",
        "run a strategy over a grid (the verb may be left out: `quantflow sweep STRATEGY ...`)",
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
    _add_running_options(command)
    resuming = add_command(
        verbs,
        "resume",
        "run again the jobs of a stored sweep that did not complete (stopped by Ctrl-C, "
        "SIGTERM or a kill, or failed), reading its data files again; a completed one never",
        sigterm_as_ctrl_c(reading(resume)),
    )
    resuming.add_argument(
        "id", type=int, metavar="ID", help="the sweep's id (`quantflow sweeps list`)"
    )
    _add_running_options(resuming)
    for module in VERB_MODULES:
        importlib.import_module(f"quantflow_async.cli.{module}").register_verbs(verbs)


def _add_running_options(command: Parser) -> None:
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

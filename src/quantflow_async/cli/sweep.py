"""`quantflow sweep`: a grid of backtests in worker processes, then a table of the best configs;
`quantflow sweep resume ID` runs a stored sweep's unfinished jobs again.

Every input mistake (strategy, grid, data files, report name) is found before the database is
opened; the sweep itself is `run_sweep`, whose Ctrl-C keeps committed fills, marks the rest
cancelled and the sweep interrupted, for `sweep resume` to finish. More verbs of `sweep` come
from the modules of `VERB_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from quantflow_async.cli.backtest import STRATEGY_NAMES, check_run
from quantflow_async.cli.metric_option import ranking_metric
from quantflow_async.cli.output import CommandError, json_grid, reading
from quantflow_async.cli.parsing import COMMANDS, Parser, add_command, add_verbs
from quantflow_async.cli.run_options import add_run_options, run_settings, setting_error
from quantflow_async.cli.stopping import sigterm_as_ctrl_c
from quantflow_async.cli.sweep_report import SweepJob, run_and_report
from quantflow_async.cli.sweep_report import ranked as ranked  # where it was first
from quantflow_async.cli.sweep_search import (
    add_search_options,
    check_search_options,
    resume_search,
    search,
)
from quantflow_async.config import Settings

if TYPE_CHECKING:
    from quantflow_async.backtest import Bars
    from quantflow_async.database import Database
    from quantflow_async.sweep_records import Sweep

VERB_MODULES: Final[tuple[str, ...]] = ("sweep_heatmap",)
"""Modules of `quantflow_async.cli` that add verbs to `quantflow sweep` beside run and resume:
each has `register_verbs(verbs)`, which adds its own with `add_command(verbs, ...)`."""


def choose_start_method(args: argparse.Namespace) -> None:
    """`args.start_method` for the sweep's workers: a fork server warmed now, while this
    command goes on importing and reading, when the command is its own process."""
    from quantflow_async.backtest.fork_server import warm_fork_server

    args.start_method = warm_fork_server() if getattr(args, "own_process", False) else "spawn"


async def sweep(settings: Settings, args: argparse.Namespace) -> None:
    choose_start_method(args)
    from quantflow_async.backtest.constraints import split_configs

    # Every mistake in the input is found before the database is opened.
    check_search_options(args)
    if args.search is not None:
        options = {"cash": args.cash, "commission": args.commission, **run_settings(args)}
        await search(settings, args, options)
        return
    if args.grid is None:
        raise CommandError("give --grid JSON, or --search tpe|random with --space JSON")
    grid = _grid(args.grid)
    configs = _configs(grid)
    if args.constraint is not None:
        configs, _ = split_configs(configs, args.constraint)
    options = {"cash": args.cash, "commission": args.commission, **run_settings(args)}
    for config in configs:
        check_run(args.strategy, config, **options)
    if args.report is not None:
        check_report(args.report)
    datasets = datasets_of(args.data)
    job = SweepJob(args.strategy, grid, args.constraint, datasets, options, len(configs))
    await run_and_report(settings, args, job)


async def resume(settings: Settings, args: argparse.Namespace) -> None:
    """`quantflow sweep resume ID`: the sweep's jobs that did not complete, run again."""
    choose_start_method(args)
    from quantflow_async.database import Database

    if args.report is not None:
        check_report(args.report)
    async with Database(settings=settings) as db:
        stored = await db.sweeps.get(args.id)
        configs = [] if stored.kind == "search" else await _stored_configs(db, args.id)
    if stored.kind == "search":
        await resume_search(settings, args, stored)
        return
    datasets = stored_datasets(stored)
    job = SweepJob(stored.strategy, configs, None, datasets, dict(stored.options), len(configs))
    await run_and_report(settings, args, job, resume=stored.id)


def stored_datasets(stored: Sweep) -> dict[str, Bars]:
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


def _grid(document: Mapping[str, Any] | list[dict[str, Any]]) -> Any:
    """Each parameter's values (a list as given, a single value as a list of one), or the
    list of configs as given."""
    if isinstance(document, list):
        return document
    return {key: value if isinstance(value, list) else [value] for key, value in document.items()}


def _configs(grid: Any) -> list[dict[str, Any]]:
    """The grid's configs; a grid with none (`{}`, a parameter given `[]`) is a mistake of
    --grid, said by the library's own check."""
    from quantflow_async.backtest import StrategyConfigError, expand_grid

    try:
        return expand_grid(grid)
    except StrategyConfigError as exc:
        raise setting_error(exc.key, exc.reason) from exc


def check_report(path: Path) -> None:
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


def datasets_of(files: Sequence[str]) -> dict[str, Bars]:
    """Each file's bars under its symbol: the file's name, upper case (goog.csv is GOOG)."""
    from quantflow_async.backtest.bars import check_storable

    datasets: dict[str, Bars] = {}
    for file in files:
        symbol = Path(file).stem.upper()
        if symbol in datasets:
            raise CommandError(
                f"two --data files are named {symbol}; the file name is the symbol, "
                "so give each data set a name of its own"
            )
        datasets[symbol] = bars = _read(Path(file))
        check_storable(bars)  # before the database is opened
    return datasets


def _read(path: Path) -> Bars:
    """The bars of `path`, their source named absolute: the sweep's row keeps it, and a
    resumed sweep reads the file again from any folder."""
    import dataclasses

    from quantflow_async.backtest import read_bars

    return dataclasses.replace(read_bars(path), source=str(path.resolve()))


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
    add_run_options(command)
    add_search_options(command)
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
        type=ranking_metric,
        default="return_pct",
        metavar="METRIC",
        help="rank by this stored metric, highest first, e.g. sharpe, cagr_pct, sqn, "
        "max_drawdown_pct (return_pct; `return` is short for it)",
    )
    command.add_argument(
        "--lowest", action="store_true", help="lowest first, for a metric such as volatility_pct"
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

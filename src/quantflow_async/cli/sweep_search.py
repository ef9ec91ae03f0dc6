"""`quantflow sweep STRATEGY --search tpe --trials N --space JSON --maximize STAT`: a search
beyond grids (the optimize extra), each trial a stored backtest of a sweep that
`quantflow sweep resume ID` goes on with.

Every mistake in the input (the space, the statistic, the constraint, a data file) is found
before the database is opened.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from quantflow_async.cli.metric_option import shown_metrics
from quantflow_async.cli.output import (
    CommandError,
    counted,
    failed_runs,
    json_value,
    plain,
    print_table,
    progress_bar,
    say,
)
from quantflow_async.config import Settings

if TYPE_CHECKING:
    from quantflow_async.backtest.search import TrialRecord
    from quantflow_async.backtest.search_sweep import SearchResult
    from quantflow_async.records import Backtest
    from quantflow_async.sweep_records import Sweep

METHODS: Final = ("tpe", "random")
"""backtest/search.py's, repeated so that `--help` imports no Optuna (a test checks they agree)."""
TRIALS: Final = 100
"""How many trials a search runs unless --trials says."""
SHOWN: Final = ("return_pct", "sharpe", "max_drawdown_pct", "trades")
SHOWN_FAILURES: Final = 3


def space_value(text: str) -> Any:
    """An argparse type: the search space, JSON inline or from a file as `@path`."""
    value = json_value(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            "--space must be a JSON object of parameters, e.g. "
            '\'{"fast": {"int": [2, 50]}, "slow": {"int": [10, 200], "step": 5}}\''
        )
    return value


def add_search_options(command: argparse.ArgumentParser) -> None:
    """The options of a search, on the command that otherwise runs a grid."""
    group = command.add_argument_group("search beyond grids (optimize extra)")
    group.add_argument(
        "--search",
        choices=METHODS,
        help="search with Optuna's TPE sampler or at random instead of running a --grid",
    )
    group.add_argument(
        "--space",
        type=space_value,
        metavar="JSON",
        help="""where to search, e.g. '{"fast": {"int": [2, 50]}, "slow": {"int": [10, 200], """
        """"step": 5}, "k": {"float": [0.5, 3.0], "log": true}, "mode": {"choice": ["a", """
        """"b"]}}', or @space.json; a plain value fixes a parameter""",
    )
    group.add_argument(
        "--trials", type=int, metavar="N", help=f"backtests to run, at most ({TRIALS})"
    )
    group.add_argument(
        "--maximize", metavar="STAT", help="the stored statistic to maximize, e.g. sharpe"
    )
    group.add_argument("--minimize", metavar="STAT", help="or the one to minimize")
    group.add_argument(
        "--seed", type=int, metavar="N", help="repeat the same search (with the same --workers)"
    )


def check_search_options(args: argparse.Namespace) -> None:
    """One line for options that only a search takes given without --search, or the other
    way round."""
    if args.search is None:
        options = ("space", "trials", "maximize", "minimize", "seed")
        given = [f"--{o}" for o in options if getattr(args, o) is not None]
        if given:
            raise CommandError(f"{given[0]} is an option of a search: add --search tpe|random")
        return
    if args.grid is not None:
        raise CommandError("give --grid for a grid, or --search with --space, not both")
    if args.space is None:
        raise CommandError("--search needs --space: where to search, as JSON")


async def search(settings: Settings, args: argparse.Namespace, options: dict[str, Any]) -> None:
    """`quantflow sweep STRATEGY --search ...`, with the run options `options`."""
    from quantflow_async.backtest.search_space import parse_space
    from quantflow_async.backtest.search_sweep import probe_strategy
    from quantflow_async.cli.backtest import settings_named_as_options
    from quantflow_async.cli.sweep import check_report, datasets_of
    from quantflow_async.extras import require_extra

    require_extra("optuna", extra="optimize", purpose="--search")
    space = parse_space(args.space)
    _check_objective(args.maximize, args.minimize)
    arguments = {
        "space": space.document(),
        "method": args.search,
        "trials": TRIALS if args.trials is None else args.trials,
        "seed": args.seed,
        "maximize": args.maximize,
        "minimize": args.minimize,
        "constraint": args.constraint,
    }
    _check_arguments(space, arguments, args.workers)
    with settings_named_as_options(options):
        probe_strategy(args.strategy, space, args.constraint, options)
    if args.report is not None:
        check_report(args.report)
    datasets = datasets_of(args.data)
    if len(datasets) != 1:
        raise CommandError(f"a search runs on one --data file, got {len(datasets)}")
    await run_search_command(settings, args, args.strategy, datasets, options, arguments)


async def resume_search(settings: Settings, args: argparse.Namespace, stored: Sweep) -> None:
    """`quantflow sweep resume ID` of a search: its trials that did not finish run again,
    then it goes on to its number of trials."""
    from quantflow_async.backtest.search_sweep import search_of
    from quantflow_async.cli.sweep import stored_datasets

    arguments = search_of(stored)
    datasets = stored_datasets(stored)
    await run_search_command(
        settings, args, stored.strategy, datasets, dict(stored.options), arguments,
        resume=stored.id,
    )  # fmt: skip


async def run_search_command(
    settings: Settings,
    args: argparse.Namespace,
    strategy: str,
    datasets: dict[str, Any],
    options: dict[str, Any],
    arguments: dict[str, Any],
    *,
    resume: int | None = None,
) -> None:
    import optuna

    from quantflow_async.backtest.search_sweep import run_search
    from quantflow_async.cli.backtest import stored_strategy_id as strategy_id_of
    from quantflow_async.database import Database

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line per trial instead
    async with Database(settings=settings) as db:
        strategy_id = await strategy_id_of(db, strategy)
        highest = arguments.get("maximize") is not None
        with _progress(arguments["trials"], highest=highest) as show:
            result = await run_search(
                db, strategy, arguments.pop("space"), datasets, strategy_id=strategy_id,
                workers=args.workers, max_worker_restarts=args.max_worker_restarts,
                start_method=getattr(args, "start_method", "spawn"),
                on_trial=show, resume=resume, **arguments, **options,
            )  # fmt: skip
        metric = result.search.objective.metric
        highest = result.search.objective.direction == "maximize"
        best = await db.sweeps.best(result.sweep_id, metric, limit=args.top, highest=highest)
        failed = await db.sweeps.failures(result.sweep_id, limit=SHOWN_FAILURES)
        if args.report is not None and best:
            from quantflow_async.analysis import write_report

            if not args.json:
                say(f"drawing backtest {best[0].id}, the best by {metric}, into {args.report}")
            await write_report(db, best[0].id, args.report)
    failures = [_failure(b) for b in failed]
    if args.json:
        print(json.dumps(plain(_document(strategy, result, best, failures)), separators=(",", ":")))
    else:
        say(_summary(strategy, result))
        _print_best(best, metric, len(result.search.trials))
    if not any(t.state == "completed" for t in result.search.trials):
        say(f"no trial has a value of {metric}, so the search could not rank them{_why(metric)}")
    failed_count = sum(1 for t in result.search.trials if t.state == "failed")
    if failed_count:
        raise failed_runs(failures, failed_count, len(result.search.trials), "trial")


def _why(metric: str) -> str:
    if metric not in ("sharpe", "sortino", "volatility_pct"):
        return ""
    return (
        f": {metric} needs daily returns, over two days of bars or more (on a shorter file, "
        "search on return_pct)"
    )


def _check_objective(maximize: str | None, minimize: str | None) -> None:
    if (maximize is None) == (minimize is None):
        raise CommandError("--search needs --maximize STAT or --minimize STAT (one of them)")


def _check_arguments(space: Any, arguments: dict[str, Any], workers: int) -> None:
    from quantflow_async.backtest.objective import check_statistic
    from quantflow_async.backtest.search import check_search

    if arguments["maximize"] is not None:
        check_statistic(arguments["maximize"], option="--maximize")
    else:
        check_statistic(arguments["minimize"], option="--minimize")
    if arguments["trials"] < 1:
        raise CommandError(f"--trials must be a whole number >= 1, got {arguments['trials']}")
    if arguments["seed"] is not None and arguments["seed"] < 0:
        raise CommandError(f"--seed must be a whole number >= 0, got {arguments['seed']}")
    check_search(
        space, trials=arguments["trials"], method=arguments["method"], seed=arguments["seed"],
        batch=workers, constraint=arguments["constraint"],
    )  # fmt: skip


@contextmanager
def _progress(total: int, *, highest: bool) -> Iterator[Callable[[TrialRecord], None] | None]:
    """A bar of trials done, with the best value so far, on stderr when it is a terminal."""
    with progress_bar("trials", total, shown=("best {task.fields[best]}",), best="-") as update:
        if update is None:
            yield None
            return
        values: list[float] = []

        def show(trial: TrialRecord) -> None:
            if trial.value is not None:
                values.append(trial.value)
            best = (max if highest else min)(values) if values else None
            update(advance=1, best="-" if best is None else f"{best:,.4g}")

        yield show


def _failure(backtest: Backtest) -> dict[str, Any]:
    error = (backtest.results or {}).get("error") or {}
    message = " ".join(str(error.get("message", "")).split())
    return {"backtest_id": backtest.id, "error": f"{error.get('type', 'Error')}: {message}"}


def _summary(strategy: str, result: SearchResult) -> str:
    search = result.search
    left_out = (
        f", {len(search.excluded)} proposals left out (excluded by the constraint or refused "
        "by the strategy)"
    )
    repeated = f", {search.repeats} repeated ones skipped" if search.repeats else ""
    ended = "; the space has no new config left" if search.exhausted else ""
    return (
        f"sweep {result.sweep_id}, {strategy}: {counted(search.ran, 'trial')} run"
        f"{left_out if search.excluded else ''}{repeated}, "
        f"{counted(result.fills_stored, 'fill')} stored in {result.seconds:.1f} s "
        f"({counted(result.workers, 'worker process', 'worker processes')}){ended}"
    )


def _print_best(best: list[Backtest], metric: str, total: int) -> None:
    columns = ["rank", "backtest", "parameters", *shown_metrics(metric, SHOWN)]
    rows = []
    for rank, backtest in enumerate(best, start=1):
        metrics = backtest.metrics or {}
        parameters = dict((backtest.config or {}).get("parameters") or {})
        shown = " ".join(f"{key}={value}" for key, value in parameters.items())
        rows.append([rank, backtest.id, shown, *(metrics.get(m) for m in columns[3:])])
    print_table(
        columns, rows, title=f"the best {len(best)} of {total} trials by {metric}",
        empty="no trial completed",
    )  # fmt: skip


def _document(
    strategy: str, result: SearchResult, best: list[Backtest], failures: list[dict[str, Any]]
) -> dict[str, Any]:
    search = result.search
    return {
        "sweep_id": result.sweep_id,
        "strategy": strategy,
        search.objective.direction: search.objective.metric,
        "trials": search.ran,
        "excluded": list(search.excluded),
        "repeats": search.repeats,
        "exhausted": search.exhausted,
        "fills_stored": result.fills_stored,
        "seconds": round(result.seconds, 3),
        "workers": result.workers,
        "best": [
            {
                "backtest_id": backtest.id,
                "parameters": (backtest.config or {}).get("parameters"),
                **{
                    key: (backtest.metrics or {}).get(key)
                    for key in shown_metrics(search.objective.metric, SHOWN)
                },
            }
            for backtest in best
        ],
        "failures": failures,
    }

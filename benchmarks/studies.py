"""Benchmark: reading a large stored study back, and what a search costs per trial over what
Optuna costs.

    python benchmarks/studies.py [--backtests 100000] [--trials 1000] [--workers 2]
                                 [--repeats 5] [--postgres URL] [--quick]

Reads (goal: under 1 s each, on both backends). A sweep of --backtests backtests (1% failed,
the rest completed with metrics) is inserted in bulk: the sweep and its pending backtests
through `db.sweeps.create`, then one UPDATE giving each its outcome. Then, --repeats times:
- top-k: the 10 best backtests by Sharpe ratio (`db.sweeps.best`);
- show: what `quantflow sweeps show ID` reads (the sweep, its counts by status, the 10 best,
  the first failures);
- heatmap: every completed backtest's parameters and metrics, aggregated into the heatmap of
  sharpe over fast and slow (`load_heatmap`, without drawing it).

Search overhead. A --trials trial TPE search (seed 1) of bollinger over 500 bars, where the
backtest itself takes a few milliseconds, so what is measured is what goes around it:
- ours: `run_search` on SQLite (and PostgreSQL), every trial a stored backtest run in
  --workers processes;
- Optuna, in memory: `study.optimize` with Optuna's own in-memory storage, the same
  backtest run in process as the objective, nothing stored;
- Optuna, on SQLite: the same with Optuna's RDBStorage in a SQLite file (durable, as ours).
A figure is wall time per trial. PostgreSQL is measured when --postgres or
QUANTFLOW_TEST_POSTGRES_URL names a server, in a database of its own dropped afterwards.
Prints tables and writes benchmarks/results/studies.json (studies-quick.json with --quick,
which only checks that the script works).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import T0, load_average, print_table, shown, spread, write_json
from repository import own_postgres_database
from sqlalchemy import text

from quantflow_async import Database
from quantflow_async.store.repositories.sweeps import JobRow

PARAMETERS = {"fast": 50, "slow": 40, "k": 50}  # 50 x 40 x 50 = 100,000 configs
STRATEGY = "bollinger"
SPACE: dict[str, Any] = {"window": {"int": [5, 60]}, "k": {"float": [0.5, 3.0]}}
"""The search's space: a float, so that no trial repeats another (Optuna's own loop would run
a repeated config again, where ours skips it and asks for another)."""
BARS = 500
TOP = 10
FAILURES = 3


def _config(n: int) -> dict[str, Any]:
    fast, rest = n % PARAMETERS["fast"], n // PARAMETERS["fast"]
    slow, k = rest % PARAMETERS["slow"], rest // PARAMETERS["slow"] % PARAMETERS["k"]
    return {
        "strategy": "sma_cross",
        "parameters": {"fast": 2 + fast, "slow": 10 + 5 * slow, "k": round(0.5 + k / 20, 3)},
        "symbol": "BENCH",
        "data": "bench.csv",
        "bars": 1000,
    }


def _outcomes(dialect: str) -> str:
    """One UPDATE: 1% failed with an error, the rest completed with metrics made from the id."""
    build = "jsonb_build_object" if dialect == "postgresql" else "json_object"
    metrics = (
        f"{build}('sharpe', ((id * 7919) % 10007) / 1000.0 - 5, "
        f"'return_pct', ((id * 104729) % 20011) / 100.0 - 100, "
        f"'max_drawdown_pct', -(((id * 31) % 5003) / 100.0), "
        f"'win_rate_pct', (id * 17) % 101, 'trades', (id * 13) % 97)"
    )
    error = f"{build}('error', {build}('type', 'ValueError', 'message', 'no such bar'))"
    return (
        "UPDATE backtests SET "
        "status = CASE WHEN id % 100 = 0 THEN 'failed' ELSE 'completed' END, "
        f"metrics = CASE WHEN id % 100 = 0 THEN NULL ELSE {metrics} END, "
        f"results = CASE WHEN id % 100 = 0 THEN {error} ELSE NULL END "
        "WHERE sweep_id = :sweep"
    )


async def store_study(db: Database, count: int) -> int:
    """A sweep of `count` finished backtests, stored in bulk; its id."""
    strategy = await db.strategies.create(name="bench studies")
    rows = [
        JobRow(
            job_key=f"{n:064x}",
            name=f"sma_cross BENCH {n}",
            start_date=T0,
            end_date=T0 + timedelta(days=365),
            initial_capital=10_000,
            config=_config(n),
        )
        for n in range(count)
    ]
    sweep, _ = await db.sweeps.create(
        strategy_id=strategy.id, strategy="sma_cross", space=SPACE, options={"cash": 10_000},
        datasets=[{"name": "BENCH", "source": "bench.csv", "bars": 1000, "fingerprint": "0"}],
        jobs=rows,
    )  # fmt: skip
    async with db.engine.begin() as conn:
        await conn.execute(text(_outcomes(db.engine.dialect.name)), {"sweep": sweep.id})
    await db.sweeps.set_status(sweep.id, "completed")
    return sweep.id


async def show_sweep(db: Database, sweep_id: int) -> int:
    """What `quantflow sweeps show ID` reads."""
    await db.sweeps.get(sweep_id)
    counts = await db.sweeps.counts(sweep_id)
    best = await db.sweeps.best(sweep_id, "sharpe", limit=TOP)
    failures = await db.sweeps.failures(sweep_id, limit=FAILURES)
    return sum(counts.values()) + len(best) + len(failures)


async def timed(repeats: int, read: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    await read()  # once untimed: caches warm, as for a second look at a study
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        await read()
        seconds.append(time.perf_counter() - started)
    return spread(seconds)


async def measure_reads(url: str, args: argparse.Namespace) -> dict[str, Any]:
    from quantflow_async.analysis.heatmap import load_heatmap

    async with Database(url) as db:
        await db.migrate()
        started = time.perf_counter()
        sweep_id = await store_study(db, args.backtests)
        setup = time.perf_counter() - started
        print(f"  stored {args.backtests:,} backtests in {setup:.1f} s")
        load = load_average()
        best = await timed(args.repeats, lambda: db.sweeps.best(sweep_id, "sharpe", limit=TOP))
        show = await timed(args.repeats, lambda: show_sweep(db, sweep_id))
        heatmap = await timed(
            args.repeats, lambda: load_heatmap(db, sweep_id, "fast", "slow", "sharpe")
        )
    return {
        "setup_seconds": setup,
        "top_k": best,
        "show": show,
        "heatmap": heatmap,
        "load_average": {"start": load, "end": load_average()},
    }


def _bars(count: int) -> Any:
    from quantflow_async.backtest import synthetic_bars

    return synthetic_bars(count, seed=1, interval=timedelta(hours=1), volatility=0.01)


def optuna_in_process(trials: int, storage: str | None) -> float:
    """Seconds per trial of Optuna's own loop, the backtest run in process."""
    import optuna

    from quantflow_async.backtest import run_backtest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bars = _bars(BARS)

    def objective(trial: Any) -> float:
        config = {
            "window": trial.suggest_int("window", *SPACE["window"]["int"]),
            "k": trial.suggest_float("k", *SPACE["k"]["float"]),
        }
        sharpe = run_backtest(STRATEGY, bars, config).metrics.get("sharpe")
        if sharpe is None:  # as ours tells the sampler a backtest without a value
            raise optuna.TrialPruned
        return float(sharpe)

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=1), storage=storage
    )
    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return (time.perf_counter() - started) / trials


async def ours(url: str, trials: int, workers: int) -> dict[str, Any]:
    from quantflow_async import run_search

    async with Database(url) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="bench search")
        started = time.perf_counter()
        result = await run_search(
            db, STRATEGY, SPACE, {"BENCH": _bars(BARS)}, strategy_id=strategy.id,
            trials=trials, maximize="sharpe", seed=1, workers=workers,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    ran = result.search.ran
    return {"seconds_per_trial": seconds / ran, "ran": ran, "skipped": result.search.repeats}


def measure_search(folder: Path, args: argparse.Namespace, postgres: str | None) -> dict[str, Any]:
    load = load_average()
    figures = {
        "ours_sqlite": asyncio.run(
            ours(f"sqlite+aiosqlite:///{folder / 'search.sqlite3'}", args.trials, args.workers)
        )
    }
    if postgres is not None:
        figures["ours_postgresql"] = asyncio.run(ours(postgres, args.trials, args.workers))
    figures["optuna_memory"] = {"seconds_per_trial": optuna_in_process(args.trials, None)}
    figures["optuna_sqlite"] = {
        "seconds_per_trial": optuna_in_process(args.trials, f"sqlite:///{folder / 'optuna.db'}")
    }
    return {**figures, "load_average": {"start": load, "end": load_average()}}


def report(args: argparse.Namespace, reads: dict[str, Any], search: dict[str, Any]) -> None:
    rows = [
        (backend, what, f"{shown(r[key], '{:.3f}')} s", "< 1 s")
        for backend, r in reads.items()
        for key, what in (
            ("top_k", f"top {TOP} by sharpe"),
            ("show", "sweeps show"),
            ("heatmap", "heatmap data (fast x slow)"),
        )
    ]
    print_table(
        f"A sweep of {args.backtests:,} stored backtests: median (min..max) of {args.repeats}",
        ["backend", "read", "time", "goal"],
        rows,
    )
    memory = search["optuna_memory"]["seconds_per_trial"]
    loops = {
        "ours_sqlite": (f"ours, run_search ({args.workers} workers)", "every backtest, SQLite"),
        "ours_postgresql": (
            f"ours, run_search ({args.workers} workers)",
            "every backtest, PostgreSQL",
        ),
        "optuna_memory": ("Optuna, in-memory storage", "nothing"),
        "optuna_sqlite": ("Optuna, RDBStorage on SQLite", "its trials, SQLite"),
    }
    print_table(
        f"A {args.trials:,}-trial TPE search ({STRATEGY} over {BARS} bars): wall time per trial; "
        f"load average {search['load_average']['start']:.2f}..{search['load_average']['end']:.2f}",
        ["loop", "stores", "per trial", "vs Optuna in memory"],
        [
            (
                *loops[key],
                f"{search[key]['seconds_per_trial'] * 1000:.1f} ms",
                f"{search[key]['seconds_per_trial'] / memory:.1f}x",
            )
            for key in loops
            if key in search
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backtests", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--postgres", default=os.environ.get("QUANTFLOW_TEST_POSTGRES_URL"))
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    args = parser.parse_args()
    if args.quick:
        args.backtests, args.trials, args.repeats = 2_000, 20, 2
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        backends = {"sqlite": f"sqlite+aiosqlite:///{folder / 'reads.sqlite3'}"}
        reads: dict[str, Any] = {}
        for backend, url in backends.items():
            print(f"{backend}:")
            reads[backend] = asyncio.run(measure_reads(url, args))
        if not args.postgres:
            print("search:")
            search = measure_search(folder, args, None)
        else:
            with own_postgres_database(args.postgres) as postgres_url:
                print("postgresql:")
                reads["postgresql"] = asyncio.run(measure_reads(postgres_url, args))
            with own_postgres_database(args.postgres) as postgres_url:
                print("search:")
                search = measure_search(folder, args, postgres_url)
    report(args, reads, search)
    write_json(
        "studies-quick" if args.quick else "studies",
        {
            "backtests": args.backtests,
            "trials": args.trials,
            "workers": args.workers,
            "repeats": args.repeats,
            "reads": reads,
            "search": search,
        },
    )


if __name__ == "__main__":
    main()

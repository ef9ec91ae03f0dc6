"""Benchmark: one sweep on local worker processes and on a Dask LocalCluster, into PostgreSQL.

    python benchmarks/cluster.py [--url URL] [--bars 30000] [--workers 2] [--repeats 3] [--quick]

The sweep is `run_sweep`'s benchmark sweep: SmaCross over 25 configs on 2 synthetic data sets
(50 backtests, about 280,000 fills with --bars 30000), commission 0.0005, into one PostgreSQL
database (made if missing; its tables dropped and migrated again before every run):
  1. `run_sweep` with --workers worker processes (spawned by each run, as a script does) that
     stream their fills to the one writer of this process;
  2. `run_sweep_on_cluster` on a LocalCluster of --workers worker processes, one thread each,
     started once before the runs (a cluster is there before a sweep is sent to it): the data
     sets are sent to the workers and each task writes its own fills through its own writer.
The two alternate, --repeats times each. Wall time runs from the call to its return; fills/s
is fills stored over it; medians. Prints a table and writes benchmarks/results/cluster.json
(cluster-quick.json with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from _common import fresh_database, median, print_table, write_json
from distributed import Client, LocalCluster
from postgres import DEFAULT_URL, ensure_database

from quantflow_async import Database
from quantflow_async.backtest import Bars, run_sweep, run_sweep_on_cluster, synthetic_bars

GRID = {"fast": [2, 3, 4, 5, 6], "slow": [8, 10, 12, 15, 20]}
COMMISSION = 0.0005


async def one_sweep(
    url: str, data: dict[str, Bars], workers: int, client: Client | None
) -> dict[str, Any]:
    """One sweep into fresh tables: locally when `client` is None, else on its cluster."""
    strategy_id, _ = await fresh_database(url)
    async with Database(url) as db:
        started = time.perf_counter()
        if client is None:
            result: Any = await run_sweep(
                db, "sma_cross", GRID, data, strategy_id=strategy_id, workers=workers,
                commission=COMMISSION,
            )  # fmt: skip
        else:
            result = await run_sweep_on_cluster(
                db, "sma_cross", GRID, data, strategy_id=strategy_id, cluster=client,
                commission=COMMISSION,
            )  # fmt: skip
        seconds = time.perf_counter() - started
        stored = await db.trades.count()
    if (
        result.failed
        or result.completed != len(result.backtest_ids)
        or stored != result.fills_stored
    ):
        raise SystemExit(f"{'cluster' if client else 'local'} sweep: {result}, {stored} stored")
    return {
        "backtests": len(result.backtest_ids),
        "fills": stored,
        "seconds": seconds,
        "fills_per_second": stored / seconds,
    }


def main(args: argparse.Namespace) -> None:
    asyncio.run(ensure_database(args.url))
    data = {
        f"S{i}": synthetic_bars(args.bars, seed=i, drift=0.0, volatility=0.005) for i in range(2)
    }
    started = time.perf_counter()
    with (
        LocalCluster(
            n_workers=args.workers, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        cluster_start = time.perf_counter() - started
        runs: dict[str, list[dict[str, Any]]] = {"local": [], "cluster": []}
        for _ in range(args.repeats):
            runs["local"].append(asyncio.run(one_sweep(args.url, data, args.workers, None)))
            runs["cluster"].append(asyncio.run(one_sweep(args.url, data, args.workers, client)))
    medians = {
        mode: {key: median([run[key] for run in found]) for key in found[0]}
        for mode, found in runs.items()
    }
    speed_up = medians["local"]["seconds"] / medians["cluster"]["seconds"]
    labels = {
        "local": f"run_sweep, {args.workers} worker processes, one writer",
        "cluster": f"run_sweep_on_cluster, LocalCluster of {args.workers} workers, writer per task",
    }
    print_table(
        f"sweep: {medians['local']['backtests']:.0f} backtests, {medians['local']['fills']:,.0f} "
        f"fills into PostgreSQL, medians of {args.repeats}; cluster over local: {speed_up:.2f}x "
        f"(the cluster took {cluster_start:.1f} s to start, not counted)",
        ["sweep", "wall", "fills/s end to end"],
        [
            [labels[mode], f"{found['seconds']:.2f} s", f"{found['fills_per_second']:,.0f}"]
            for mode, found in medians.items()
        ],
    )
    write_json(
        "cluster" if not args.quick else "cluster-quick",
        {
            "grid": GRID,
            "bars_per_data_set": args.bars,
            "workers": args.workers,
            "repeats": args.repeats,
            "cluster_start_seconds": cluster_start,
            "medians": medians,
            "cluster_over_local": speed_up,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--bars", type=int, default=30_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.bars, arguments.repeats = 3_000, 1
    main(arguments)

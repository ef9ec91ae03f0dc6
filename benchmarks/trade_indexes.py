"""Benchmark: what each index on `trades` costs an insert, on SQLite.

    python benchmarks/trade_indexes.py [--fills 300000] [--backtests 96] [--repeats 5]

The physical limit of `ingest.py` (raw sqlite3 executemany of ready rows, the writer's
statement, pragmas and batch of 5,000, one transaction a batch) into a freshly migrated file:
with every index of the schema; then with each secondary index dropped, one at a time; then
with all of them dropped (the table keeps its rowid and the unique `external_id` every
exactly-once promise rests on). Each variant runs once per round, in an order that turns
round, on a fresh copy of the migrated file; a figure is the median (min..max) of the rounds.
A variant's cost is the time it saves against every index kept, as a share of that time;
the last variant makes the partial indexes whole again, as they were before revision 008.

The same fills are inserted in two orders, since an index costs most where its keys land all
over it rather than at its end:
  - time order: live fills (no backtest), each a millisecond after the one before, as a bot
    stores them;
  - sweep order: the fills of --backtests backtests of one strategy over the same period, one
    backtest after the other, as a sweep stores them (each backtest's times start again at
    the beginning). Since revision 008 the strategy, symbol and time indexes hold live fills
    only and the order index fills with an order, so a sweep's fills go into two indexes.
Prints a table and writes benchmarks/results/trade-indexes.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from _common import (
    fresh_database,
    load_average,
    median,
    print_table,
    spread,
    synthetic_fills,
    write_json,
)

from ingest import raw_sqlite, url_for
from quantflow_async.records import Fill


def secondary_indexes(path: Path) -> dict[str, str]:
    """Each secondary index on trades, by name, with the statement that made it."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'trades' "
            "AND sql IS NOT NULL ORDER BY name"
        ).fetchall()
    return dict(rows)


ADDED_BY_008 = "ix_trades_strategy_id"


def made_whole(indexes: dict[str, str]) -> list[str]:
    """The statements that give trades its indexes as before revision 008: every partial one
    made whole again, and the one 008 added dropped."""
    statements = [f'DROP INDEX "{ADDED_BY_008}"'] if ADDED_BY_008 in indexes else []
    for name, sql in indexes.items():
        if " WHERE " in sql:
            statements += [f'DROP INDEX "{name}"', sql.split(" WHERE ")[0]]
    return statements


def sweep_fills(count: int, strategy_id: int, backtest_ids: list[int]) -> list[Fill]:
    """`count` fills of the backtests in turn, each backtest's over the same period."""
    per_backtest = -(-count // len(backtest_ids))
    fills: list[Fill] = []
    for backtest_id in backtest_ids:
        wanted = min(per_backtest, count - len(fills))
        fills += synthetic_fills(wanted, strategy_id, backtest_id)
    return fills


def more_backtests(path: Path, backtest_id: int, count: int) -> list[int]:
    """`backtest_id` and `count - 1` copies of its row, by id."""
    with sqlite3.connect(path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(backtests)")]
        copied = ", ".join(column for column in columns if column != "id")
        for _ in range(count - 1):
            connection.execute(
                f"INSERT INTO backtests ({copied}) SELECT {copied} FROM backtests WHERE id = ?",
                (backtest_id,),
            )
        return [id_ for (id_,) in connection.execute("SELECT id FROM backtests ORDER BY id")]


def changed_copy(template: Path, target: Path, statements: list[str]) -> Path:
    """A copy of the migrated `template` at `target` (a new name: no WAL of another run
    beside it), its indexes changed by `statements`."""
    shutil.copyfile(template, target)
    with sqlite3.connect(target) as connection:
        for statement in statements:
            connection.execute(statement)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=300_000)
    parser.add_argument("--backtests", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trade-indexes-") as name:
        folder = Path(name)
        template = folder / "template.sqlite3"
        strategy_id, backtest_id = asyncio.run(fresh_database(url_for(template)))
        backtest_ids = more_backtests(template, backtest_id, args.backtests)
        orders = {
            "time order": list(synthetic_fills(args.fills, strategy_id, None)),
            "sweep order": sweep_fills(args.fills, strategy_id, backtest_ids),
        }
        with sqlite3.connect(template) as connection:  # everything in the file itself
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        indexes = secondary_indexes(template)
        variants: dict[str, list[str]] = {"every index": []}
        variants.update({f"without {index}": [f'DROP INDEX "{index}"'] for index in indexes})
        variants["without any secondary index"] = [f'DROP INDEX "{i}"' for i in indexes]
        variants["every index whole (before revision 008)"] = made_whole(indexes)
        runs = [(order, variant) for order in orders for variant in variants]
        seconds: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
        load_at_start = load_average()
        for n in range(args.repeats):
            shift = n % len(runs)
            for order, variant in runs[shift:] + runs[:shift]:
                number = runs.index((order, variant))
                copy = folder / f"run-{n}-{number}.sqlite3"
                path = changed_copy(template, copy, variants[variant])
                seconds[order, variant].append(raw_sqlite(path, orders[order]))
        load_at_end = load_average()

    rows: list[list[Any]] = []
    results: dict[str, Any] = {order: {} for order in orders}
    for variant in variants:
        row: list[Any] = [variant]
        for order in orders:
            base = median(seconds[order, "every index"])
            taken = median(seconds[order, variant])
            saved = (base - taken) / base
            rate = args.fills / taken
            row += [f"{rate:,.0f}", f"{saved:.0%}" if variant != "every index" else ""]
            results[order][variant] = {
                "seconds": spread(seconds[order, variant]),
                "fills_per_second": rate,
                "saved": saved,
            }
        rows.append(row)
    print_table(
        f"{args.fills:,} fills into trades by raw sqlite3 executemany, median of "
        f"{args.repeats} rounds; sweep order: {args.backtests} backtests "
        f"(load {load_at_start:.2f} -> {load_at_end:.2f})",
        ["indexes", "time order fills/s", "saved", "sweep order fills/s", "saved"],
        rows,
    )
    write_json(
        "trade-indexes",
        {
            "fills": args.fills,
            "backtests": args.backtests,
            "repeats": args.repeats,
            "load_average": {"start": load_at_start, "end": load_at_end},
            "orders": results,
        },
    )


if __name__ == "__main__":
    main()

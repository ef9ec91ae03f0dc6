"""Benchmark: what each index on `trades` costs an insert, on SQLite.

    python benchmarks/trade_indexes.py [--fills 300000] [--repeats 3]

The physical limit of `ingest.py` (raw sqlite3 executemany of ready rows, the writer's
statement, pragmas and batch of 5,000, one transaction a batch) into a freshly migrated file:
with every index of the schema; then with each secondary index dropped, one at a time; then
with all of them dropped (the table keeps its rowid and the unique `external_id` every
exactly-once promise rests on). Each variant runs once per round, in an order that turns
round, on a fresh copy of the migrated file; a figure is the median (min..max) of the rounds.
A variant's cost is the time it saves against every index kept, as a share of that time.
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
    shown,
    spread,
    synthetic_fills,
    write_json,
)

from ingest import raw_sqlite, url_for


def secondary_indexes(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'trades' "
            "AND sql IS NOT NULL ORDER BY name"
        ).fetchall()
    return [name for (name,) in rows]


def without(template: Path, target: Path, dropped: list[str]) -> Path:
    """A copy of the migrated `template` at `target` (a new name: no WAL of another run
    beside it), with the `dropped` indexes dropped."""
    shutil.copyfile(template, target)
    with sqlite3.connect(target) as connection:
        for name in dropped:
            connection.execute(f'DROP INDEX "{name}"')
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trade-indexes-") as name:
        folder = Path(name)
        template = folder / "template.sqlite3"
        strategy_id, backtest_id = asyncio.run(fresh_database(url_for(template)))
        fills = list(synthetic_fills(args.fills, strategy_id, backtest_id))
        with sqlite3.connect(template) as connection:  # everything in the file itself
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        indexes = secondary_indexes(template)
        variants: dict[str, list[str]] = {"every index": []}
        variants.update({f"without {index}": [index] for index in indexes})
        variants["without any secondary index"] = list(indexes)
        names = list(variants)
        seconds: dict[str, list[float]] = {variant: [] for variant in names}
        load_at_start = load_average()
        for n in range(args.repeats):
            shift = n % len(names)
            for variant in names[shift:] + names[:shift]:
                number = names.index(variant)
                path = without(template, folder / f"run-{n}-{number}.sqlite3", variants[variant])
                seconds[variant].append(raw_sqlite(path, fills))
        load_at_end = load_average()

    base = median(seconds["every index"])
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    for variant in names:
        figure = spread(seconds[variant])
        saved = (base - median(seconds[variant])) / base
        rate = args.fills / median(seconds[variant])
        rows.append(
            [variant, shown(figure), f"{rate:,.0f}", f"{saved:.0%}" if variant != names[0] else ""]
        )
        results[variant] = {"seconds": figure, "fills_per_second": rate, "saved": saved}
    print_table(
        f"{args.fills:,} fills into trades by raw sqlite3 executemany, median (min..max) of "
        f"{args.repeats} rounds (load {load_at_start:.2f} -> {load_at_end:.2f})",
        ["indexes", "seconds", "fills/s", "time saved"],
        rows,
    )
    write_json(
        "trade-indexes",
        {
            "fills": args.fills,
            "repeats": args.repeats,
            "load_average": {"start": load_at_start, "end": load_at_end},
            "variants": results,
        },
    )


if __name__ == "__main__":
    main()

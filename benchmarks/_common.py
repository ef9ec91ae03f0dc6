"""Shared by the benchmark scripts: synthetic fills, fresh databases, tables, JSON output."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from quantflow_async import Database, Fill

T0 = datetime(2024, 1, 1, tzinfo=UTC)
RESULTS = Path(__file__).parent / "results"


def synthetic_fills(
    count: int, strategy_id: int, backtest_id: int | None, start: int = 0
) -> Iterator[Fill]:
    """Backtest-like fills: two sides, four symbols, a fee, an external id, times 1 ms apart."""
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "ADAUSDT")
    for n in range(start, start + count):
        yield Fill(
            strategy_id=strategy_id,
            backtest_id=backtest_id,
            symbol=symbols[n % 4],
            side="buy" if n % 2 else "sell",
            quantity="0.5",
            price=f"{42000 + n % 1000}.12",
            fee="0.021",
            executed_at=T0 + timedelta(milliseconds=n),
            external_id=f"bench-{backtest_id}-{n}",
        )


async def fresh_database(url: str) -> tuple[int, int]:
    """Migrate an empty database at `url`; return (strategy_id, backtest_id) to attach fills to."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)  # noqa: ASYNC240 - set-up, not timed
    else:
        await _drop_postgres_tables(url)
    async with Database(url) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="bench")
        backtest = await db.backtests.create(
            strategy_id=strategy.id,
            name="bench",
            start_date=T0,
            end_date=T0 + timedelta(days=365),
            initial_capital=1,
        )
    return strategy.id, backtest.id


async def _drop_postgres_tables(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        # Every table of every revision, whichever revisions the database was migrated to.
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


def bytecode_env(cache: str) -> dict[str, str]:
    """This process's environment for a child that writes bytecode and reuses it, as an
    installed package's is (pip compiles it at install), even where PYTHONDONTWRITEBYTECODE
    is set: into `cache`, not the source tree. Without it, on such a machine, every process
    of ours compiles the package's modules again, where the peer's come compiled."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


@contextmanager
def bytecode_cached() -> Iterator[None]:
    """Every child started in the block caches its bytecode (`bytecode_env`), in a temporary
    folder removed after it; the first run of each command writes it."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        os.environ.clear()
        os.environ.update(bytecode_env(cache))
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> dict[str, Any]:
    """A figure over repeated runs: the median, the range, and every run."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": list(values),
    }


def shown(figure: dict[str, Any], form: str = "{:.2f}") -> str:
    """A spread() as 'median (min..max)'."""
    return (
        f"{form.format(figure['median'])} "
        f"({form.format(figure['min'])}..{form.format(figure['max'])})"
    )


def load_average() -> float:
    """The 1-minute load average: what else ran on the machine while a figure was taken."""
    return os.getloadavg()[0]


def percentile(values: Sequence[float], percent: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered)) - 1))
    return ordered[index]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    print(f"\nwrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path

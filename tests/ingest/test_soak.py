"""Contention soak: a writer ingesting without pause, 8 reader tasks paging trades, and a
second OS process reading the same SQLite file through the `quantflow` CLI.

No one may see "database is locked", and readers may only ever see committed data: every
commit adds exactly one whole batch, so a reader that counts anything but a multiple of the
batch size has seen a torn write. (The writer's throughput under this load is measured by
benchmarks/contention.py, not asserted here.)
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from quantflow_async import Database, TradeWriter

from ..conftest import make_fill

SECONDS = float(os.environ.get("QUANTFLOW_SOAK_SECONDS", "30"))
BATCH = 1000
READERS = 8


@pytest.mark.slow
@pytest.mark.timeout(SECONDS * 4 + 60)
async def test_soak_writer_readers_and_a_second_process_never_lock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'soak.sqlite3'}"
    problems: list[str] = []
    async with Database(url) as db:
        await db.migrate()
        strategy = (await db.strategies.create(name="soak")).id
        deadline = time.monotonic() + SECONDS
        reads = {"pages": 0, "counts": 0, "cli": 0}

        async def produce(writer: TradeWriter) -> None:
            n = 0
            while time.monotonic() < deadline:
                await writer.submit_many(make_fill(strategy, n + k) for k in range(BATCH))
                await writer.flush()  # one commit of exactly BATCH fills
                n += BATCH

        def check_count(who: str, count: int, floor: int, ceiling: int) -> None:
            if count % BATCH or not floor <= count <= ceiling:
                problems.append(
                    f"{who} saw {count} trades (committed between {floor} and {ceiling})"
                )

        async def read(writer: TradeWriter, k: int) -> None:
            after: int | None = None
            while time.monotonic() < deadline:
                try:
                    floor = writer.stats().written
                    count = await db.trades.count(strategy_id=strategy)
                    check_count(f"reader {k}", count, floor, writer.stats().submitted)
                    page = await db.trades.list(strategy_id=strategy, after_id=after, limit=500)
                    keys = [(t.executed_at, t.id) for t in page]
                    if keys != sorted(keys):
                        problems.append(f"reader {k} got a page out of order")
                    after = page[-1].id if page else None
                    reads["pages"] += 1
                    reads["counts"] += 1
                except Exception as exc:  # every error is a finding here
                    problems.append(f"reader {k}: {exc!r}")
                    return

        async def other_process(writer: TradeWriter) -> None:
            command = [sys.executable, "-m", "quantflow_async.cli", "--database-url", url]
            while time.monotonic() < deadline:
                floor = writer.stats().written
                child = await asyncio.create_subprocess_exec(
                    *command,
                    "count-trades",
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                out, err = await child.communicate()
                if child.returncode != 0 or err:
                    problems.append(f"the CLI failed ({child.returncode}): {err.decode()[:200]}")
                    return
                check_count("the CLI", int(out), floor, writer.stats().submitted)
                reads["cli"] += 1

        async with db.writer(batch_size=BATCH, max_latency=1) as writer:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce(writer))
                group.create_task(other_process(writer))
                for k in range(READERS):
                    group.create_task(read(writer, k))
        stats = writer.stats()
        stored = await db.trades.count()

    assert problems == []
    assert stored == stats.submitted == stats.written > 0
    assert reads["cli"] > 0 and reads["pages"] > READERS
    assert "locked" not in caplog.text and "retrying" not in caplog.text

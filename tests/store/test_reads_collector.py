"""Reads pause the cyclic garbage collector for one page at a time, and always give it back:
after a read, after a read cut short, and never turning on a collector the program turned off."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from quantflow_async import Database

from ..conftest import make_fill


@pytest.fixture
async def trades_stored(db: Database, strategy_id: int) -> None:
    await db.trades.insert_many([make_fill(strategy_id, n) for n in range(3000)])


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("trades_stored")
async def test_the_collector_runs_again_after_pages_are_read(db: Database) -> None:
    assert len(await db.trades.list(limit=3000)) == 3000
    assert [trade async for trade in db.trades.stream(chunk_size=1000)][-1].external_id
    assert gc.isenabled()


@pytest.mark.usefixtures("trades_stored")
async def test_overlapping_reads_and_a_cancelled_one_leave_the_collector_running(
    db: Database,
) -> None:
    reads = [asyncio.ensure_future(db.trades.list(limit=3000)) for _ in range(4)]
    await asyncio.sleep(0)
    reads[0].cancel()
    done = await asyncio.gather(*reads, return_exceptions=True)
    assert isinstance(done[0], asyncio.CancelledError)
    assert all(len(page) == 3000 for page in done[1:])
    assert gc.isenabled()


@pytest.mark.usefixtures("trades_stored", "collector_off")
async def test_a_collector_turned_off_by_the_program_stays_off(db: Database) -> None:
    await db.trades.list(limit=3000)
    assert not gc.isenabled()

"""db.trades.stream(): every matching trade in (executed_at, id) order, one chunk in memory."""

from __future__ import annotations

import gc
import tracemalloc
from datetime import timedelta

import pytest

from quantflow_async import Database, InvalidValue

from ..conftest import T0, make_fill


async def _all(db: Database, **filters: object) -> list[int]:
    return [trade.id async for trade in db.trades.stream(**filters)]  # type: ignore[arg-type]


async def test_stream_gives_every_trade_in_the_order_of_the_pages(
    db: Database, strategy_id: int
) -> None:
    # Inserted out of time order, with ties on executed_at across chunk boundaries.
    fills = [
        make_fill(strategy_id, n, executed_at=T0 + timedelta(seconds=(n * 7) % 10))
        for n in range(25)
    ]
    await db.trades.insert_many(fills)
    streamed = [trade async for trade in db.trades.stream(chunk_size=3)]
    assert streamed == await db.trades.list(limit=100)
    keys = [(t.executed_at, t.id) for t in streamed]
    assert keys == sorted(keys) and len(set(keys)) == 25


async def test_stream_applies_the_same_filters_as_list(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    live = [make_fill(strategy_id, n, symbol="ETHUSDT") for n in range(4)]
    sim = [make_fill(strategy_id, n, backtest_id=backtest_id) for n in range(4, 10)]
    await db.trades.insert_many(live + sim)
    window = {"since": T0 + timedelta(seconds=2), "until": T0 + timedelta(seconds=6)}
    for filters in ({"backtest_id": backtest_id}, {"symbol": "ETHUSDT"}, window):
        listed = [t.id for t in await db.trades.list(**filters)]  # type: ignore[arg-type]
        assert await _all(db, **filters, chunk_size=2) == listed


async def test_stream_of_nothing_ends_at_once(db: Database) -> None:
    assert await _all(db) == []


@pytest.mark.parametrize("chunk_size", [0, -1, 100_001, 2.5, True])
async def test_bad_chunk_size_is_refused(db: Database, chunk_size: object) -> None:
    with pytest.raises(InvalidValue, match="chunk_size"):
        await _all(db, chunk_size=chunk_size)


async def test_leaving_a_stream_early_holds_no_connection(db: Database, strategy_id: int) -> None:
    await db.trades.insert_many([make_fill(strategy_id, n) for n in range(10)])
    async for _trade in db.trades.stream(chunk_size=2):
        break
    # Each chunk is read and its connection returned before the first trade is handed out.
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def _peak_while_streaming(db: Database, chunk_size: int) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        count = 0
        async for _trade in db.trades.stream(chunk_size=chunk_size):
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 4000
    return peak


async def test_stream_memory_depends_on_the_chunk_not_on_the_trades(
    db: Database, strategy_id: int
) -> None:
    await db.trades.insert_many([make_fill(strategy_id, n) for n in range(4000)])
    whole = await _peak_while_streaming(db, chunk_size=4000)
    chunked = await _peak_while_streaming(db, chunk_size=200)
    # 4,000 trades in chunks of 200 need a fraction of what holding them all at once needs.
    assert chunked < whole / 4, (chunked, whole)

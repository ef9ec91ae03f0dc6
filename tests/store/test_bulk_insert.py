"""Large batches (COPY on PostgreSQL) store exactly what went in: every value, in order, and
a fill whose external_id is already stored, or repeated in the batch, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quantflow_async import Database
from quantflow_async.store.trade_insert import PG_COPY_FROM

from ..conftest import make_fill

EDGES = [
    {"quantity": "0.000000000000000001", "price": "99999999999999999999.999999999999999999"},
    {"quantity": "12345678901234567890123456789012345678", "price": "0"},
    {"quantity": "1E+3", "price": "0.1", "fee": "-0.000000000000000001", "pnl": "-1E-18"},
    {"executed_at": datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC)},
    {"executed_at": datetime(9999, 12, 31, 23, 59, 59, 999_998, tzinfo=UTC)},
    {"metadata": {"nested": {"list": [1, 2.5, None, True, "ü"]}, "big": 10**30}},
    {"symbol": "Ω-'\";--", "external_id": "quote'\"back\\slash"},
]


async def test_a_large_batch_stores_every_value_exactly_and_in_order(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    count = 3 * PG_COPY_FROM
    fills = [
        make_fill(strategy_id, n, backtest_id=backtest_id, **EDGES[n % len(EDGES)])
        if n % 50 == 0
        else make_fill(strategy_id, n, backtest_id=backtest_id, fee="0.25", pnl=n - 100)
        for n in range(count)
    ]
    assert await db.trades.insert_many(fills) == count
    stored = await db.trades.list(backtest_id=backtest_id, limit=10_000)
    by_external_id = {trade.external_id: trade for trade in stored}
    for fill in fills:
        trade = by_external_id[fill.external_id]
        assert (trade.quantity, trade.price, trade.fee, trade.pnl) == (
            fill.quantity, fill.price, fill.fee, fill.pnl,
        )  # fmt: skip
        assert (trade.symbol, trade.side, trade.executed_at) == (
            fill.symbol, fill.side, fill.executed_at,
        )  # fmt: skip
        assert trade.metadata == fill.metadata
    ids = [by_external_id[fill.external_id].id for fill in fills]
    assert ids == sorted(ids)  # ids follow the order of the batch


async def test_a_large_batch_skips_stored_and_repeated_external_ids(
    db: Database, strategy_id: int
) -> None:
    first = [make_fill(strategy_id, n) for n in range(PG_COPY_FROM)]
    assert await db.trades.insert_many(first) == PG_COPY_FROM
    again = first[::2] + [make_fill(strategy_id, n) for n in range(PG_COPY_FROM, 2 * PG_COPY_FROM)]
    again += again[-10:]  # repeated inside the batch too
    assert await db.trades.insert_many(again) == PG_COPY_FROM
    assert await db.trades.count() == 2 * PG_COPY_FROM


async def test_the_writer_stores_large_batches_once(db: Database, strategy_id: int) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    fills = [
        make_fill(strategy_id, n, external_id=None, executed_at=start + timedelta(microseconds=n))
        for n in range(5 * PG_COPY_FROM)
    ]
    async with db.writer(batch_size=2 * PG_COPY_FROM, max_latency=600) as writer:
        await writer.submit_many(fills)
    assert await db.trades.count() == len(fills)
    summary = await db.trades.summary()
    assert summary[0].bought_quantity + summary[0].sold_quantity == Decimal("0.5") * len(fills)

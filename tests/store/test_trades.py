"""db.trades: batched inserts that store each fill once, keyset pages, counts, exact summaries."""

from __future__ import annotations

import asyncio
from dataclasses import fields, replace
from datetime import timedelta
from decimal import Decimal

import pytest

from quantflow_async import Conflict, Database, InvalidValue, NotFound, SymbolSummary, Trade

from ..conftest import T0, make_fill


async def test_insert_many_returns_how_many_rows_were_new(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    fills = [make_fill(strategy_id, n, backtest_id=backtest_id) for n in range(5)]
    assert await db.trades.insert_many(fills) == 5
    assert await db.trades.count(backtest_id=backtest_id) == 5


async def test_duplicate_external_id_is_stored_once(db: Database, strategy_id: int) -> None:
    fills = [make_fill(strategy_id, n) for n in range(3)]
    assert await db.trades.insert_many(fills) == 3
    assert await db.trades.insert_many([*fills, make_fill(strategy_id, 3)]) == 1
    assert await db.trades.insert_many([make_fill(strategy_id, 9)] * 2) == 1
    assert await db.trades.count() == 5


async def test_fills_without_external_id_are_all_stored(db: Database, strategy_id: int) -> None:
    fill = make_fill(strategy_id, external_id=None)
    assert await db.trades.insert_many([fill, fill]) == 2


async def test_missing_strategy_fails_the_whole_batch_naming_the_id(
    db: Database, strategy_id: int
) -> None:
    fills = [make_fill(strategy_id, 0), make_fill(404, 1), make_fill(strategy_id, 2)]
    with pytest.raises(NotFound, match="strategy with strategy_id=404"):
        await db.trades.insert_many(fills)
    assert await db.trades.count() == 0


async def test_missing_backtest_fails_the_whole_batch_naming_the_id(
    db: Database, strategy_id: int
) -> None:
    with pytest.raises(NotFound, match="backtest with backtest_id=77"):
        await db.trades.insert_many(
            [make_fill(strategy_id, 0), make_fill(strategy_id, 1, backtest_id=77)]
        )
    assert await db.trades.count() == 0


async def test_backtest_of_another_strategy_is_a_conflict(db: Database, backtest_id: int) -> None:
    other = (await db.strategies.create(name="other")).id
    with pytest.raises(Conflict, match="belongs to strategy"):
        await db.trades.insert_many([make_fill(other, backtest_id=backtest_id)])


async def test_insert_many_refuses_what_is_not_a_fill(db: Database, strategy_id: int) -> None:
    with pytest.raises(InvalidValue, match=r"fills\[1\]: expected Fill, got dict"):
        await db.trades.insert_many([make_fill(strategy_id), {"symbol": "X"}])  # type: ignore[list-item]


async def test_insert_many_of_nothing_is_zero(db: Database) -> None:
    assert await db.trades.insert_many([]) == 0


async def test_records_carry_every_field_back(db: Database, strategy_id: int) -> None:
    # Ids that differ from each other, so no two fields can be swapped unnoticed.
    owner = (await db.strategies.create(name="owner")).id
    backtest = await db.backtests.create(
        strategy_id=owner,
        name="b",
        start_date=T0,
        end_date=T0 + timedelta(days=1),
        initial_capital=1,
    )
    assert (owner, backtest.id) == (strategy_id + 1, 1)
    fill = make_fill(
        owner,
        backtest_id=backtest.id,
        type="limit",
        fee="0.021",
        pnl="-3.5",
        status="partially_filled",
        metadata={"order_id": "A-1", "tags": ["x"]},
    )
    await db.trades.insert_many([fill])
    (trade,) = await db.trades.list()
    assert trade == await db.trades.get(trade.id)
    assert (trade.type, trade.fee, trade.pnl, trade.status) == (
        "limit", Decimal("0.021"), Decimal("-3.5"), "partially_filled",
    )  # fmt: skip
    assert trade.metadata == {"order_id": "A-1", "tags": ["x"]}
    assert (trade.external_id, trade.executed_at, trade.quantity) == (
        fill.external_id, fill.executed_at, fill.quantity,
    )  # fmt: skip
    assert (trade.strategy_id, trade.backtest_id) == (owner, backtest.id)


async def test_list_filters_by_backtest_strategy_symbol_and_time(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    live = [make_fill(strategy_id, n, symbol="ETHUSDT") for n in range(4)]
    sim = [make_fill(strategy_id, n, backtest_id=backtest_id) for n in range(4, 10)]
    await db.trades.insert_many(live + sim)
    assert len(await db.trades.list(backtest_id=backtest_id)) == 6
    assert len(await db.trades.list(symbol="ETHUSDT")) == 4
    window = await db.trades.list(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=6))
    assert [t.external_id for t in window] == [f"fill-{n}" for n in range(2, 6)]
    assert await db.trades.count(strategy_id=strategy_id, symbol="BTCUSDT") == 6


async def test_pages_follow_executed_at_then_id_without_gaps_or_repeats(
    db: Database, strategy_id: int
) -> None:
    # Inserted out of time order, with ties on executed_at.
    fills = [
        make_fill(strategy_id, n, executed_at=T0 + timedelta(seconds=(n * 7) % 10))
        for n in range(25)
    ]
    await db.trades.insert_many(fills)
    seen, after = [], None
    while page := await db.trades.list(limit=4, after_id=after):
        seen.extend(page)
        after = page[-1].id
    keys = [(t.executed_at, t.id) for t in seen]
    assert keys == sorted(keys)
    assert len({t.id for t in seen}) == 25


async def test_after_id_that_does_not_exist_raises_not_found(db: Database) -> None:
    with pytest.raises(NotFound, match="after_id=5"):
        await db.trades.list(after_id=5)


@pytest.mark.parametrize("limit", [0, -1, 100_001, 2.5, True])
async def test_bad_limit_is_refused(db: Database, limit: object) -> None:
    with pytest.raises(InvalidValue, match="limit"):
        await db.trades.list(limit=limit)  # type: ignore[arg-type]


async def test_summary_is_exact_per_symbol(db: Database, strategy_id: int) -> None:
    fills = [
        make_fill(
            strategy_id, 0, side="buy", quantity="0.1", price="0.1", fee="0.00000001", pnl=None
        ),
        make_fill(strategy_id, 1, side="buy", quantity="0.2", price="0.3", fee="0.00000002"),
        make_fill(
            strategy_id, 2, side="sell", quantity="0.3", price="123456789.123456789", pnl="1.1"
        ),
        make_fill(
            strategy_id, 3, symbol="ETHUSDT", side="sell", quantity="1", price="2", pnl="-0.3"
        ),
    ]
    await db.trades.insert_many(fills)
    assert await db.trades.summary(strategy_id=strategy_id) == [
        SymbolSummary(
            symbol="BTCUSDT",
            trade_count=3,
            bought_quantity=Decimal("0.3"),
            sold_quantity=Decimal("0.3"),
            notional=Decimal("0.01") + Decimal("0.06") + Decimal("37037036.7370370367"),
            fees=Decimal("0.00000003"),
            realized_pnl=Decimal("1.1"),
        ),
        SymbolSummary(
            "ETHUSDT", 1, Decimal(0), Decimal(1), Decimal(2), Decimal(0), Decimal("-0.3")
        ),
    ]


async def test_summary_of_nothing_is_empty(db: Database) -> None:
    assert await db.trades.summary() == []


async def test_readers_never_see_locked_errors_during_a_long_batched_insert(
    db: Database, strategy_id: int
) -> None:
    batches = [[make_fill(strategy_id, b * 2000 + n) for n in range(2000)] for b in range(15)]
    done = asyncio.Event()
    counts: list[int] = []

    async def write() -> None:
        for batch in batches:
            await db.trades.insert_many(batch)
        done.set()

    async def read() -> None:
        while not done.is_set():
            counts.append(await db.trades.count())
            await db.trades.list(limit=100)

    await asyncio.gather(write(), *(read() for _ in range(4)))
    assert counts, "the readers never ran"
    # Readers only ever saw whole committed batches.
    assert all(count % 2000 == 0 for count in counts)
    assert await db.trades.count() == 30_000


async def test_trades_read_back_are_the_records_trade_itself_would_make(
    db: Database, strategy_id: int
) -> None:
    # Reads build records without Trade.__init__ (for speed); nothing may tell them apart.
    await db.trades.insert_many([make_fill(strategy_id, metadata={"order": {"id": "A-1"}})])
    (trade,) = await db.trades.list()
    rebuilt = Trade(**{field.name: getattr(trade, field.name) for field in fields(Trade)})
    assert trade == rebuilt
    assert replace(trade, symbol="ETHUSDT").symbol == "ETHUSDT"
    with pytest.raises(TypeError):
        trade.metadata["order"]["id"] = "changed"  # type: ignore[index]


async def test_count_and_summary_cover_the_trades_list_covers(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    live = [make_fill(strategy_id, n, symbol="ETHUSDT") for n in range(4)]
    sim = [make_fill(strategy_id, n, backtest_id=backtest_id) for n in range(4, 10)]
    await db.trades.insert_many(live + sim)
    window = {"since": T0 + timedelta(seconds=2), "until": T0 + timedelta(seconds=6)}
    for filters in ({"backtest_id": backtest_id}, {"symbol": "ETHUSDT"}, window, {}):
        listed = await db.trades.list(**filters)  # type: ignore[arg-type]
        assert await db.trades.count(**filters) == len(listed)  # type: ignore[arg-type]
        summary = await db.trades.summary(**filters)  # type: ignore[arg-type]
        assert sum(s.trade_count for s in summary) == len(listed)
        assert sum(s.notional for s in summary) == sum(t.quantity * t.price for t in listed)

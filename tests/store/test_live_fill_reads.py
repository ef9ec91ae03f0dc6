"""Reads of live fills (`live=True`): the strategy, symbol and time indexes hold live fills only
(revision 008), so a sweep's fills do not land all over them; a backtest's fills are read by
backtest. Reads that do not say `live` still see every fill."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from quantflow_async import Conflict, Database, InvalidValue
from quantflow_async.store.repositories.trade_rows import Select, TradeFilter, backend_for

from ..conftest import T0, make_fill


async def _live_and_backtest_fills(db: Database, strategy_id: int, backtest_id: int) -> None:
    live = [make_fill(strategy_id, n, symbol="ETHUSDT") for n in range(4)]
    simulated = [make_fill(strategy_id, n, backtest_id=backtest_id, symbol="ETHUSDT")
                 for n in range(4, 10)]  # fmt: skip
    await db.trades.insert_many(live + simulated)


async def test_live_true_reads_live_fills_only_and_false_backtest_fills_only(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    await _live_and_backtest_fills(db, strategy_id, backtest_id)
    window = {"since": T0 + timedelta(seconds=2), "until": T0 + timedelta(seconds=6)}
    for filters in ({"strategy_id": strategy_id}, {"symbol": "ETHUSDT"}, window, {}):
        every = await db.trades.list(**filters)  # type: ignore[arg-type]
        live = await db.trades.list(**filters, live=True)  # type: ignore[arg-type]
        simulated = await db.trades.list(**filters, live=False)  # type: ignore[arg-type]
        assert all(t.backtest_id is None for t in live)
        assert all(t.backtest_id == backtest_id for t in simulated)
        assert sorted(t.id for t in live + simulated) == sorted(t.id for t in every)
        assert await db.trades.count(**filters, live=True) == len(live)  # type: ignore[arg-type]
        summary = await db.trades.summary(**filters, live=False)  # type: ignore[arg-type]
        assert sum(s.trade_count for s in summary) == len(simulated)
        streamed = [t async for t in db.trades.stream(**filters, live=True, chunk_size=1)]  # type: ignore[arg-type]
        assert streamed == live


async def test_pages_of_live_fills_follow_time_order_without_gaps(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    fills = [
        make_fill(strategy_id, n, executed_at=T0 + timedelta(seconds=(n * 7) % 10),
                  backtest_id=None if n % 3 else backtest_id)
        for n in range(30)
    ]  # fmt: skip
    await db.trades.insert_many(fills)
    seen, after = [], None
    while page := await db.trades.list(strategy_id=strategy_id, live=True, limit=4, after_id=after):
        seen.extend(page)
        after = page[-1].id
    assert [(t.executed_at, t.id) for t in seen] == sorted((t.executed_at, t.id) for t in seen)
    assert len({t.id for t in seen}) == 20


async def test_a_backtest_with_live_true_is_refused_by_name(db: Database, backtest_id: int) -> None:
    with pytest.raises(InvalidValue, match="live: cannot be True with a backtest_id"):
        await db.trades.list(backtest_id=backtest_id, live=True)
    # live=False with a backtest is what the backtest holds anyway.
    assert await db.trades.count(backtest_id=backtest_id, live=False) == 0


@pytest.mark.parametrize("live", [1, "yes", 0.0])
async def test_live_that_is_not_a_bool_is_refused(db: Database, live: Any) -> None:
    with pytest.raises(InvalidValue, match="live: must be True, False or None"):
        await db.trades.count(live=live)


async def test_a_strategy_with_trades_or_backtests_is_still_not_deleted_and_one_without_is(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    await db.trades.insert_many([make_fill(strategy_id, 0, backtest_id=backtest_id)])
    with pytest.raises(Conflict, match="still has 1 backtests and trades; delete those first"):
        await db.strategies.delete(strategy_id)
    other = (await db.strategies.create(name="live only")).id
    await db.trades.insert_many([make_fill(other, 1)])
    with pytest.raises(Conflict, match="still has 0 backtests and trades"):
        await db.strategies.delete(other)
    empty = (await db.strategies.create(name="empty")).id
    await db.strategies.delete(empty)


def test_on_sqlite_deleting_a_strategy_looks_its_trades_up_by_index(
    migrated_sqlite_file: Path,
) -> None:
    # The foreign key's own look-up, which a partial index cannot serve.
    with sqlite3.connect(migrated_sqlite_file) as connection:
        rows = connection.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM trades WHERE strategy_id = ?", (1,)
        ).fetchall()
    assert [row[3] for row in rows] == [
        "SEARCH trades USING COVERING INDEX ix_trades_strategy_id (strategy_id=?)"
    ]


def _plan(path: Path, wanted: TradeFilter) -> str:
    query = Select(backend_for("sqlite"), "*").matching(wanted.checked()).page(100)
    with sqlite3.connect(path) as connection:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {query.text()}", query.params).fetchall()
    return " / ".join(row[3] for row in rows)


@pytest.mark.parametrize(
    ("wanted", "index"),
    [
        (TradeFilter(strategy_id=1, live=True), "ix_trades_strategy_id_executed_at"),
        (TradeFilter(symbol="ETHUSDT", live=True), "ix_trades_symbol_executed_at"),
        (TradeFilter(symbol="ETHUSDT", since=T0, live=True), "ix_trades_symbol_executed_at"),
        (TradeFilter(backtest_id=1), "ix_trades_backtest_id_executed_at"),
    ],
)
def test_on_sqlite_live_reads_are_index_range_scans_in_time_order(
    migrated_sqlite_file: Path, wanted: TradeFilter, index: str
) -> None:
    plan = _plan(migrated_sqlite_file, wanted)
    assert plan == f"SEARCH trades USING INDEX {index} " + plan.split(f"{index} ", 1)[1]
    assert "TEMP B-TREE" not in plan


def test_on_sqlite_a_read_by_time_of_live_fills_uses_an_index(migrated_sqlite_file: Path) -> None:
    plan = _plan(migrated_sqlite_file, TradeFilter(since=T0, live=True))
    assert plan.startswith("SEARCH trades USING INDEX ")
    assert "TEMP B-TREE" not in plan


async def test_a_misspelt_filter_is_named(db: Database) -> None:
    message = r"unknown trade filter 'symbl'; the filters are backtest_id, strategy_id, symbol"
    with pytest.raises(TypeError, match=message):
        await db.trades.list(symbl="ETHUSDT")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=message):
        await db.trades.count(symbl="ETHUSDT")  # type: ignore[call-arg]

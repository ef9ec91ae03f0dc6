"""A large page of trades is made into records a slice at a time, and the event loop's other
tasks run between slices: a bot reading its history does not stall its own loop for the whole
page (a page of 100,000 held it for 300 ms before). The page is the same as one made whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import pytest

from quantflow_async import Database
from quantflow_async.records import Trade
from quantflow_async.store.repositories.trade_rows import RECORDS_SLICE

from ..conftest import make_fill

PAGE = 2 * RECORDS_SLICE + 500


@pytest.fixture
async def trades_stored(db: Database, strategy_id: int) -> None:
    await db.trades.insert_many([make_fill(strategy_id, n) for n in range(PAGE)])


class LoopTurns:
    """Counts the turns a task of its own gets on the event loop."""

    def __init__(self) -> None:
        self.count = 0

    async def keep_counting(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)


@pytest.fixture
async def loop_turns() -> AsyncIterator[LoopTurns]:
    turns = LoopTurns()
    counting = asyncio.ensure_future(turns.keep_counting())
    try:
        yield turns
    finally:
        counting.cancel()


@pytest.fixture
def slices_seen(db: Database, loop_turns: LoopTurns, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """(rows, loop turns so far) for each slice the store's backend makes into records."""
    seen: list[Any] = []
    backend = db.trades._backend
    made = type(backend).records

    def records(self: Any, rows: Iterable[Sequence[Any]]) -> list[Trade]:
        rows = list(rows)
        seen.append((len(rows), loop_turns.count))
        return made(self, rows)

    monkeypatch.setattr(type(backend), "records", records)
    return seen


@pytest.mark.usefixtures("trades_stored")
async def test_a_large_page_lets_other_tasks_run_between_its_slices(
    db: Database, slices_seen: list[Any]
) -> None:
    page = await db.trades.list(limit=PAGE)
    assert [rows for rows, _ in slices_seen] == [RECORDS_SLICE, RECORDS_SLICE, 500]
    turns = [turn for _, turn in slices_seen]
    assert turns == sorted(set(turns))  # the counting task ran between every two slices
    assert [trade.external_id for trade in page] == [f"fill-{n}" for n in range(PAGE)]


@pytest.mark.usefixtures("trades_stored")
async def test_a_page_made_in_slices_equals_the_same_trades_read_in_small_pages(
    db: Database,
) -> None:
    whole = await db.trades.list(limit=PAGE)
    pieces: list[Trade] = []
    while len(pieces) < PAGE:
        after = pieces[-1].id if pieces else None
        pieces += await db.trades.list(limit=RECORDS_SLICE // 3, after_id=after)
    assert whole == pieces
    assert [trade async for trade in db.trades.stream(chunk_size=PAGE)] == whole


@pytest.mark.usefixtures("trades_stored")
async def test_a_page_of_one_slice_is_made_in_one_go(db: Database, slices_seen: list[Any]) -> None:
    assert len(await db.trades.list(limit=RECORDS_SLICE)) == RECORDS_SLICE
    assert [rows for rows, _ in slices_seen] == [RECORDS_SLICE]

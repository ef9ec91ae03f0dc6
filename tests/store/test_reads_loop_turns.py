"""A large page of trades is made into records a slice at a time, and the event loop's other
tasks run between slices: a bot reading its history does not stall its own loop for the whole
page (a page of 100,000 held it for 300 ms before). The page is the same as one made whole."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import pytest

from quantflow_async import Database
from quantflow_async.records import Trade
from quantflow_async.store.repositories.page_records import RECORDS_SLICE

from ..conftest import make_fill
from ..support.loop_turns import LoopTurns, loop_turns_counted

PAGE = 2 * RECORDS_SLICE + 500


@pytest.fixture
async def trades_stored(db: Database, strategy_id: int) -> None:
    await db.trades.insert_many([make_fill(strategy_id, n) for n in range(PAGE)])


@pytest.fixture
async def loop_turns() -> AsyncIterator[LoopTurns]:
    async with loop_turns_counted() as turns:
        yield turns


@pytest.fixture
def slices_seen(db: Database, loop_turns: LoopTurns, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """For each slice the store's backend makes into records: its rows, the loop turns so
    far, and the rows still held in the list the driver fetched."""
    seen: list[Any] = []
    fetched: list[Sequence[Any]] = []
    backend_class = type(db.trades._backend)
    fetch, made = backend_class.fetch, backend_class.records

    async def fetch_and_keep(self: Any, driver: Any, query: Any) -> Sequence[Any]:
        rows = await fetch(self, driver, query)
        fetched.append(rows)
        return rows

    def records(self: Any, rows: Iterable[Sequence[Any]]) -> list[Trade]:
        rows = list(rows)
        seen.append((len(rows), loop_turns.count, len(fetched[-1])))
        return made(self, rows)

    monkeypatch.setattr(backend_class, "fetch", fetch_and_keep)
    monkeypatch.setattr(backend_class, "records", records)
    return seen


@pytest.mark.usefixtures("trades_stored")
async def test_a_large_page_lets_other_tasks_run_between_its_slices(
    db: Database, slices_seen: list[Any]
) -> None:
    page = await db.trades.list(limit=PAGE)
    turns = [turn for _, turn, _ in slices_seen]
    assert len(turns) == 3
    assert turns == sorted(set(turns))  # the counting task ran between every two slices
    assert [trade.external_id for trade in page] == [f"fill-{n}" for n in range(PAGE)]


@pytest.mark.usefixtures("trades_stored")
async def test_the_fetched_rows_are_let_go_a_slice_at_a_time(
    db: Database, slices_seen: list[Any]
) -> None:
    await db.trades.list(limit=PAGE)
    assert [(rows, held) for rows, _, held in slices_seen] == [
        (RECORDS_SLICE, PAGE),
        (RECORDS_SLICE, PAGE - RECORDS_SLICE),
        (500, 500),
    ]


@pytest.mark.usefixtures("trades_stored")
async def test_a_page_of_one_slice_is_made_in_one_go(db: Database, slices_seen: list[Any]) -> None:
    assert len(await db.trades.list(limit=RECORDS_SLICE)) == RECORDS_SLICE
    assert [rows for rows, _, _ in slices_seen] == [RECORDS_SLICE]


@pytest.mark.usefixtures("trades_stored")
async def test_a_read_cancelled_between_slices_leaves_nothing_behind(
    db: Database, slices_seen: list[Any]
) -> None:
    reading = asyncio.ensure_future(db.trades.list(limit=PAGE))
    while not slices_seen:
        await asyncio.sleep(0)
    reading.cancel()  # it is waiting for its turn after the first slice
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert len(slices_seen) == 1
    assert gc.isenabled()
    assert len(await db.trades.list(limit=PAGE)) == PAGE  # the connection went back whole


@pytest.mark.parametrize("size", [2 * RECORDS_SLICE, PAGE])
@pytest.mark.usefixtures("trades_stored")
async def test_a_page_made_in_slices_equals_the_same_trades_read_in_small_pages(
    db: Database, size: int
) -> None:
    whole = await db.trades.list(limit=size)
    pieces: list[Trade] = []
    while len(pieces) < size:
        after = pieces[-1].id if pieces else None
        pieces += await db.trades.list(limit=RECORDS_SLICE // 3, after_id=after)
    assert whole == pieces[:size]
    streamed = [trade async for trade in db.trades.stream(chunk_size=RECORDS_SLICE + 500)]
    assert streamed[:size] == whole

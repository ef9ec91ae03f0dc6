"""Reads at driver speed: the work per row is the driver's fetch and one conversion per value,
with no per-row call into SQLAlchemy (its type processors and row objects cost more than the
fetch). Counting calls makes this a deterministic test; benchmarks/repository.py times it."""

from __future__ import annotations

import gc
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import sqlalchemy

from quantflow_async import Database

from ..conftest import T0, make_fill

SQLALCHEMY = str(Path(sqlalchemy.__file__).parent)


async def _sqlalchemy_calls(read: Callable[[], Awaitable[Any]]) -> int:
    """The fewest SQLAlchemy calls in three runs of `read`, with the garbage collector held.

    A collection during the read would count the finalizers of objects earlier tests left
    (pooled connections, cached statements) as if the read had made them: noise only adds
    calls, so the fewest of three runs, without collections, is the read's own count."""
    gc.collect()
    gc.disable()
    try:
        return min([await _calls_in_one_run(read) for _run in range(3)])
    finally:
        gc.enable()


async def _calls_in_one_run(read: Callable[[], Awaitable[Any]]) -> int:
    calls = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        if event == "call" and frame.f_code.co_filename.startswith(SQLALCHEMY):
            calls += 1

    sys.setprofile(count)
    try:
        await read()
    finally:
        sys.setprofile(None)
    return calls


async def _calls_per_extra_row(db: Database, read: Callable[[int], Awaitable[Any]]) -> float:
    await read(10)  # warm the pool and the statement caches
    few = await _sqlalchemy_calls(lambda: read(10))
    many = await _sqlalchemy_calls(lambda: read(2000))
    return (many - few) / 1990


@pytest.fixture
async def trades_stored(db: Database, strategy_id: int) -> None:
    fills = [make_fill(strategy_id, n, fee="0.01", pnl="1.5") for n in range(2000)]
    await db.trades.insert_many(fills)


@pytest.mark.usefixtures("trades_stored")
async def test_a_page_of_trades_costs_no_sqlalchemy_call_per_row(db: Database) -> None:
    assert await _calls_per_extra_row(db, lambda n: db.trades.list(limit=n)) < 0.01


@pytest.mark.usefixtures("trades_stored")
async def test_streaming_trades_costs_no_sqlalchemy_call_per_row(db: Database) -> None:
    async def stream(n: int) -> None:
        async for _trade in db.trades.stream(until=_nth(n), chunk_size=5000):
            pass

    assert await _calls_per_extra_row(db, stream) < 0.01


@pytest.mark.usefixtures("trades_stored")
async def test_a_summary_costs_no_sqlalchemy_call_per_row(db: Database) -> None:
    assert await _calls_per_extra_row(db, lambda n: db.trades.summary(until=_nth(n))) < 0.01


def _nth(n: int) -> datetime:
    """The end of a window holding the first `n` stored trades (make_fill spaces them 1 s)."""
    return T0 + timedelta(seconds=n)

"""TradeWriter: batching, back-pressure, many producers, flush, wait=True, draining on close."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anyio
import anyio.lowlevel
import pytest
from sqlalchemy import text

from quantflow_async import (
    Database,
    Fill,
    FillRejected,
    InvalidValue,
    QueueFull,
    WriterClosed,
    WriterNotRunning,
    WriterOptions,
)
from quantflow_async.store.engine import write_transaction

from ..conftest import make_fill


async def test_leaving_the_block_commits_every_submitted_fill(
    db: Database, strategy_id: int
) -> None:
    async with db.writer(batch_size=100, max_latency=5) as writer:
        for n in range(1050):
            await writer.submit(make_fill(strategy_id, n))
    assert await db.trades.count() == 1050
    stats = writer.stats()
    assert (stats.submitted, stats.written, stats.duplicates, stats.queue_depth) == (
        1050,
        1050,
        0,
        0,
    )
    assert stats.batches >= 11


async def test_a_full_batch_is_committed_without_waiting_for_max_latency(
    db: Database, strategy_id: int
) -> None:
    async with db.writer(batch_size=10, max_latency=60) as writer:
        for n in range(10):
            writer.submit_nowait(make_fill(strategy_id, n))
        with anyio.fail_after(10):  # far below max_latency: only a full batch gets here
            while await db.trades.count() < 10:
                await anyio.sleep(0.01)
        assert writer.stats().batches == 1


async def test_a_partial_batch_is_committed_after_max_latency(
    db: Database, strategy_id: int
) -> None:
    async with db.writer(batch_size=1000, max_latency=0.05) as writer:
        await writer.submit(make_fill(strategy_id))
        with anyio.fail_after(10):
            while await db.trades.count() < 1:
                await anyio.sleep(0.01)
        assert writer.stats().batches == 1


async def test_flush_returns_once_everything_before_it_is_committed(
    db: Database, strategy_id: int
) -> None:
    async with db.writer(batch_size=1000, max_latency=60) as writer:
        for n in range(25):
            await writer.submit(make_fill(strategy_id, n))
        await writer.flush()
        assert await db.trades.count() == 25
        await writer.flush()  # nothing pending: returns at once


async def test_wait_true_returns_once_the_fill_is_committed(db: Database, strategy_id: int) -> None:
    async with db.writer(batch_size=1000, max_latency=0.01) as writer:
        await writer.submit(make_fill(strategy_id, 1), wait=True)
        assert await db.trades.count() == 1
        stats = writer.stats()
        assert stats.wait_latency_p50 is not None and stats.wait_latency_p99 is not None


async def test_duplicates_are_counted_not_stored(db: Database, strategy_id: int) -> None:
    async with db.writer() as writer:
        for n in range(10):
            await writer.submit(make_fill(strategy_id, n % 4))
    assert await db.trades.count() == 4
    assert (writer.stats().written, writer.stats().duplicates) == (4, 6)


async def test_submit_nowait_raises_queue_full_at_max_queue(db: Database, strategy_id: int) -> None:
    async with db.writer(max_queue=5) as writer:
        for n in range(5):  # no await in between: the writer task cannot run
            writer.submit_nowait(make_fill(strategy_id, n))
        with pytest.raises(QueueFull, match="max_queue=5"):
            writer.submit_nowait(make_fill(strategy_id, 5))
    assert await db.trades.count() == 5


async def test_submit_waits_while_the_queue_is_full_then_goes_on(
    db: Database, strategy_id: int
) -> None:
    async with db.writer(max_queue=3, batch_size=2, max_latency=0) as writer:
        for n in range(200):
            await writer.submit(make_fill(strategy_id, n))
            assert writer.stats().queue_depth <= 3
    assert await db.trades.count() == 200


async def test_hundreds_of_producers_keep_each_ones_order(db: Database, strategy_id: int) -> None:
    producers, per_producer = 200, 25

    async def produce(writer_: object, p: int) -> None:
        for k in range(per_producer):
            fill = make_fill(strategy_id, p * per_producer + k, external_id=f"p{p}-{k:03}")
            await writer.submit(fill)
            if k % 5 == 0:
                await anyio.lowlevel.checkpoint()

    async with db.writer(batch_size=300, max_queue=500) as writer:
        async with anyio.create_task_group() as tg:
            for p in range(producers):
                tg.start_soon(produce, writer, p)
    stored = []
    after = None
    while page := await db.trades.list(limit=5000, after_id=after):
        stored.extend(page)
        after = page[-1].id
    assert len(stored) == producers * per_producer
    by_producer: dict[str, list[tuple[int, str]]] = {}
    for trade in stored:
        assert trade.external_id is not None
        producer = trade.external_id.split("-")[0]
        by_producer.setdefault(producer, []).append((trade.id, trade.external_id))
    for rows in by_producer.values():
        assert [ext for _, ext in sorted(rows)] == sorted(ext for _, ext in rows)


async def test_an_exception_in_the_block_still_drains_then_propagates(
    db: Database, strategy_id: int
) -> None:
    with pytest.raises(RuntimeError, match="bot crashed"):
        async with db.writer(batch_size=1000, max_latency=60) as writer:
            for n in range(30):
                await writer.submit(make_fill(strategy_id, n))
            raise RuntimeError("bot crashed")
    assert await db.trades.count() == 30


async def test_submit_after_close_raises_writer_closed(db: Database, strategy_id: int) -> None:
    async with db.writer() as writer:
        pass
    with pytest.raises(WriterClosed):
        await writer.submit(make_fill(strategy_id))
    with pytest.raises(WriterClosed):
        writer.submit_nowait(make_fill(strategy_id))
    await writer.aclose()  # closing twice is fine


async def test_a_writer_starts_only_once(db: Database) -> None:
    writer = db.writer()
    async with writer:
        pass
    with pytest.raises(WriterNotRunning, match="started once"):
        async with writer:
            pass


async def test_submit_refuses_what_is_not_a_fill(db: Database) -> None:
    async with db.writer() as writer:
        with pytest.raises(InvalidValue, match="expected Fill, got dict"):
            await writer.submit({"symbol": "BTCUSDT"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "option, value",
    [
        ("batch_size", 0),
        ("batch_size", 2.5),
        ("batch_size", True),
        ("max_queue", 0),
        ("max_queue", -1),
        ("max_latency", -1.0),
        ("max_latency", float("nan")),
        ("max_latency", float("inf")),
        ("commit_timeout", 0),
        ("commit_timeout", float("nan")),
        ("commit_timeout", -5),
    ],
)
async def test_bad_writer_options_are_refused_naming_the_option(
    db: Database, option: str, value: float
) -> None:
    with pytest.raises(InvalidValue, match=f"^{option}: ") as raised:
        db.writer(**{option: value})  # type: ignore[arg-type]
    assert raised.value.field == option


@pytest.mark.parametrize(
    "option, value",
    [
        ("retry_attempts", -1),
        ("retry_initial_delay", float("nan")),
        ("retry_max_delay", float("inf")),
        ("max_rejected", -1),
    ],
)
def test_bad_writer_defaults_are_refused_naming_the_option(option: str, value: float) -> None:
    with pytest.raises(InvalidValue, match=f"^{option}: "):
        WriterOptions(**{option: value})  # type: ignore[arg-type]


async def test_an_async_on_reject_is_refused_when_the_writer_is_made(db: Database) -> None:
    async def handler(rejection: FillRejected) -> None:
        pass

    with pytest.raises(InvalidValue, match="^on_reject: must be a plain function"):
        db.writer(on_reject=handler)  # type: ignore[arg-type]


async def test_submit_many_queues_in_order(db: Database, strategy_id: int) -> None:
    async with db.writer(max_queue=50) as writer:
        queued = await writer.submit_many(make_fill(strategy_id, n) for n in range(500))
    assert queued == 500
    assert await db.trades.count() == 500


async def test_submit_many_queues_the_fills_before_a_bad_one_then_names_it(
    db: Database, strategy_id: int
) -> None:
    fills: list[object] = [make_fill(strategy_id, n) for n in range(700)]
    fills.insert(600, {"symbol": "BTC"})
    async with db.writer(max_queue=10_000) as writer:
        with pytest.raises(InvalidValue, match="expected Fill, got dict"):
            await writer.submit_many(fills)  # type: ignore[arg-type]
        assert writer.stats().submitted == 600
    assert await db.trades.count() == 600


async def test_submit_many_queues_what_an_input_gave_before_it_raised(
    db: Database, strategy_id: int
) -> None:
    def fills_then_an_error() -> Iterator[Fill]:
        for n in range(300):
            yield make_fill(strategy_id, n)
        raise RuntimeError("the input broke")

    async with db.writer(max_queue=10_000) as writer:
        with pytest.raises(RuntimeError, match="the input broke"):
            await writer.submit_many(fills_then_an_error())
        assert writer.stats().submitted == 300
        # one fill, then exactly one slice: the input ends on a slice's boundary
        assert await writer.submit_many(make_fill(strategy_id, n) for n in range(300, 813)) == 513
    assert await db.trades.count() == 813


async def test_a_cancelled_submit_waiting_for_space_queues_nothing(
    db: Database, strategy_id: int
) -> None:
    async with write_transaction(db.engine) as blocker:  # the writer's first batch waits
        if db.engine.dialect.name == "postgresql":
            await blocker.execute(text("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE"))
        async with db.writer(max_queue=2, batch_size=2, max_latency=0) as writer:
            writer.submit_nowait(make_fill(strategy_id, 0))
            writer.submit_nowait(make_fill(strategy_id, 1))
            while writer.stats().queue_depth:  # taken as the batch now held up by the lock
                await anyio.lowlevel.checkpoint()
            writer.submit_nowait(make_fill(strategy_id, 2))
            writer.submit_nowait(make_fill(strategy_id, 3))
            blocked = asyncio.ensure_future(writer.submit(make_fill(strategy_id, 4)))
            await asyncio.sleep(0.05)
            assert not blocked.done()
            blocked.cancel()
            with pytest.raises(asyncio.CancelledError):
                await blocked
            assert writer.stats().submitted == 4
            await blocker.rollback()
    stored = {t.external_id for t in await db.trades.list()}
    assert stored == {"fill-0", "fill-1", "fill-2", "fill-3"}


async def test_a_cancelled_wait_for_commit_still_commits_the_queued_fill(
    db: Database, strategy_id: int
) -> None:
    async with db.writer(batch_size=1000, max_latency=60) as writer:
        waiting = asyncio.ensure_future(writer.submit(make_fill(strategy_id, 7), wait=True))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert writer.stats().submitted == 1
    assert [t.external_id for t in await db.trades.list()] == ["fill-7"]


async def test_cancelling_the_owner_drains_before_the_cancellation_propagates(
    db: Database, strategy_id: int
) -> None:
    submitted = asyncio.Event()

    async def bot() -> None:
        async with db.writer(batch_size=1000, max_latency=60) as writer:
            for n in range(40):
                await writer.submit(make_fill(strategy_id, n))
            submitted.set()
            await asyncio.sleep(60)

    task = asyncio.ensure_future(bot())
    await submitted.wait()  # not a fixed pause: on a loaded machine the writer opens late
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await db.trades.count() == 40

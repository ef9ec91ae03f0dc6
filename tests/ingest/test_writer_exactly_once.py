"""Exactly once without an external_id: each batch commits a token in its own transaction, and a
retry whose outcome is unknown asks for the token before it writes again."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import psutil
import pytest
from sqlalchemy.engine import make_url

from quantflow_async import Database, Settings, WriterOptions
from quantflow_async.ingest.sqlite_worker_main import PAUSE_AFTER_COMMIT_ENV

from ..conftest import make_fill
from ..support.faults import proxy_to

FAST_RETRIES = WriterOptions(retry_attempts=5, retry_initial_delay=0.01, retry_max_delay=0.05)


async def _stopped(pid: int) -> None:
    with anyio.fail_after(30):
        while psutil.Process(pid).status() != psutil.STATUS_STOPPED:
            await anyio.sleep(0.01)


async def test_worker_killed_between_commit_and_reply_stores_the_batch_once(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pause-once"
    monkeypatch.setenv(PAUSE_AFTER_COMMIT_ENV, str(marker))
    async with Database(settings=Settings(database_url=sqlite_url, writer=FAST_RETRIES)) as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
        fills = [make_fill(strategy_id, n, external_id=None) for n in range(1000)]
        async with db.writer(batch_size=1000, max_latency=600) as writer:
            worker = writer.connection_pid
            assert worker is not None
            marker.touch()  # the next commit pauses its worker before the reply
            flushed = anyio.Event()

            async def flush() -> None:
                await writer.flush()
                flushed.set()

            async with anyio.create_task_group() as group:
                await writer.submit_many(fills)
                group.start_soon(flush)
                await _stopped(worker)
                assert await db.trades.count() == 1000  # committed; the reply never left
                os.kill(worker, signal.SIGKILL)
            assert flushed.is_set()
            assert writer.connection_pid != worker
        assert await db.trades.count() == 1000
        stats = writer.stats()
        assert (stats.written, stats.duplicates, stats.unwritten) == (1000, 0, 0)


@pytest.mark.postgres
async def test_postgres_connection_dropped_after_commit_stores_the_batch_once(
    postgres_database_url: str,
) -> None:
    url = make_url(postgres_database_url)
    async with proxy_to(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        async with Database(settings=Settings(database_url=proxied, writer=FAST_RETRIES)) as db:
            await db.migrate()
            strategy_id = (await db.strategies.create(name="s")).id
            fills = [make_fill(strategy_id, n, external_id=None) for n in range(1000)]
            async with db.writer(batch_size=1000, max_latency=600) as writer:
                await writer.submit_many(fills)
                proxy.drop_next_commit_reply()
                await writer.flush()
            assert proxy.commits_dropped == 1
            assert await db.trades.count() == 1000
            stats = writer.stats()
            assert (stats.written, stats.duplicates, stats.unwritten) == (1000, 0, 0)


async def test_tokens_do_not_pile_up(db: Database, strategy_id: int) -> None:
    from sqlalchemy import func, select

    from quantflow_async.store.schema import writer_batches

    async with db.writer(batch_size=10, max_latency=0) as writer:
        for n in range(200):
            await writer.submit(make_fill(strategy_id, n, external_id=None), wait=True)
    async with db.engine.connect() as conn:
        left = await conn.scalar(select(func.count()).select_from(writer_batches))
    assert writer.stats().batches >= 20
    assert left == 1  # only the last batch's token, which no later batch replaced

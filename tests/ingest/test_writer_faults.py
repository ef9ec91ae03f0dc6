"""TradeWriter under real faults: refused rows, busy locks, lost connections, a database gone.

Nothing accepted is lost and nothing is stored twice: refused fills are isolated and reported,
passing faults are retried, and when the database is gone the uncommitted fills are handed back.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from quantflow_async import (
    Database,
    FillRejected,
    Settings,
    WriterFailed,
    WriterOptions,
)

from ..conftest import POSTGRES_ROUND_IN_CI, T0, make_fill
from ..support.faults import proxy_to
from ..support.server_processes import end_server_process, end_the_first_waiting_connection

FAST_RETRIES = WriterOptions(retry_attempts=3, retry_initial_delay=0.01, retry_max_delay=0.05)


async def _refuse_symbol(db: Database, symbol: str) -> None:
    """A trigger that refuses fills of one symbol, as a venue rule or a bad row would."""
    async with db.engine.begin() as conn:
        if db.engine.dialect.name == "sqlite":
            await conn.execute(
                text(
                    f"CREATE TRIGGER refuse BEFORE INSERT ON trades WHEN NEW.symbol = '{symbol}' "
                    f"BEGIN SELECT RAISE(ABORT, 'symbol {symbol} is not tradable'); END"
                )
            )
            return
        await conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.symbol = '{symbol}' THEN RAISE EXCEPTION 'symbol {symbol} is not "
                "tradable' USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END "
                "$$ LANGUAGE plpgsql"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON trades "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )


async def test_bad_rows_are_isolated_and_every_good_fill_is_committed(
    db: Database, strategy_id: int
) -> None:
    await _refuse_symbol(db, "REFUSED")
    reported: list[FillRejected] = []
    bad_positions = {3, 50, 51, 199}
    fills = [
        make_fill(strategy_id, n, symbol="REFUSED" if n in bad_positions else "BTCUSDT")
        for n in range(200)
    ]
    async with db.writer(batch_size=200, max_latency=60, on_reject=reported.append) as writer:
        await writer.submit_many(fills)
    assert await db.trades.count() == 196
    assert [r.fill for r in writer.rejected] == [fills[n] for n in sorted(bad_positions)]
    assert tuple(reported) == writer.rejected
    assert "not tradable" in writer.rejected[0].reason
    assert (writer.stats().written, writer.stats().rejected) == (196, 4)


async def test_fill_of_a_missing_strategy_is_rejected_naming_it(
    db: Database, strategy_id: int
) -> None:
    async with db.writer(max_latency=0.01) as writer:
        await writer.submit(make_fill(strategy_id, 1))
        with pytest.raises(FillRejected, match="strategy with strategy_id=999 does not exist"):
            await writer.submit(make_fill(999, 2), wait=True)
        await writer.submit(make_fill(strategy_id, 3), wait=True)
    assert {t.external_id for t in await db.trades.list()} == {"fill-1", "fill-3"}


async def test_a_failing_on_reject_callback_does_not_stop_the_writer(
    db: Database, strategy_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(rejection: FillRejected) -> None:
        raise RuntimeError("callback bug")

    async with db.writer(on_reject=explode) as writer:
        await writer.submit(make_fill(404))
        await writer.submit(make_fill(strategy_id, 1))
    assert await db.trades.count() == 1
    assert "on_reject callback raised" in caplog.text


async def test_sqlite_busy_is_retried_until_the_lock_is_released(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "busy.sqlite3"
    retries = WriterOptions(retry_attempts=30, retry_initial_delay=0.02, retry_max_delay=0.1)
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{path}", busy_timeout_ms=10, writer=retries
    )
    async with Database(settings=settings) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="s")
        async with aiosqlite.connect(path) as blocker, db.writer(max_latency=0) as writer:
            await blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
            for n in range(50):
                await writer.submit(make_fill(strategy.id, n))
            await anyio.sleep(0.3)
            await blocker.rollback()
            await writer.flush()
        assert await db.trades.count() == 50
    assert "retrying" in caplog.text


async def test_a_connection_closed_under_the_writer_is_replaced(
    db: Database, strategy_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with db.writer(max_latency=0.01) as writer:
        await writer.submit(make_fill(strategy_id, 0), wait=True)
        await _kill_writer_connection(db, writer)
        for n in range(1, 100):
            await writer.submit(make_fill(strategy_id, n))
        await writer.flush()
    assert await db.trades.count() == 100
    assert writer.unwritten == ()
    assert "retrying" in caplog.text


async def test_ctrl_c_reaching_the_sqlite_worker_does_not_interrupt_it(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with Database(sqlite_url) as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
        async with db.writer(max_latency=0.01) as writer:
            await writer.submit(make_fill(strategy_id, 0), wait=True)
            os.kill(writer.connection_pid or 0, signal.SIGINT)
            await writer.submit_many(make_fill(strategy_id, n) for n in range(1, 2000))
            await writer.flush()
        assert await db.trades.count() == 2000
    assert "retrying" not in caplog.text


async def _kill_writer_connection(db: Database, writer: Any) -> None:
    if db.engine.dialect.name == "sqlite":
        os.kill(writer.connection_pid or 0, signal.SIGKILL)  # the worker holding the connection
        return
    pid = writer.connection_pid
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def test_removed_sqlite_file_fails_the_writer_and_hands_back_the_fills(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gone.sqlite3"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{path}", writer=FAST_RETRIES)
    async with Database(settings=settings) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="s")
        later = [make_fill(strategy.id, n) for n in range(10, 20)]
        with pytest.raises(WriterFailed, match="removed or replaced") as closing:
            async with db.writer(max_latency=0.01) as writer:
                await writer.submit(make_fill(strategy.id, 0), wait=True)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
                await writer.submit_many(later)
                with pytest.raises(WriterFailed) as flushing:
                    await writer.flush()
                with pytest.raises(WriterFailed):
                    await writer.submit(make_fill(strategy.id, 99), wait=True)
        assert list(flushing.value.unwritten) == later
        assert list(closing.value.unwritten) == later
        assert list(writer.unwritten) == later


async def test_full_disk_fails_the_writer_and_a_new_writer_carries_on(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'full.sqlite3'}"
    async with Database(url) as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
    # max_page_count caps the file at about 160 KB: a disk that fills up after a few fills.
    small_disk = Settings(
        database_url=url, writer=FAST_RETRIES, sqlite_pragmas=("PRAGMA max_page_count = 40",)
    )
    fills = [make_fill(strategy_id, n, metadata={"pad": "x" * 8000}) for n in range(60)]
    async with Database(settings=small_disk) as db:
        with pytest.raises(WriterFailed, match="full") as failed:
            async with db.writer(batch_size=10, max_latency=0) as writer:
                await writer.submit_many(fills)
        stored = await db.trades.count()
    handed_back = failed.value.unwritten
    assert 0 < len(handed_back) and stored + len(handed_back) == len(fills)
    assert list(handed_back) == fills[stored:]

    async with Database(url) as db:  # the disk has room again
        async with db.writer() as writer:
            await writer.submit_many(handed_back)
        assert await db.trades.count() == len(fills)


async def test_read_only_database_fails_the_writer_and_hands_back_the_fills(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ro.sqlite3"
    async with Database(f"sqlite+aiosqlite:///{path}") as db:
        await db.migrate()
        strategy_id = (await db.strategies.create(name="s")).id
    fills = [make_fill(strategy_id, n) for n in range(20)]
    read_only = Settings(database_url=f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
    async with Database(settings=read_only) as db:
        with pytest.raises(WriterFailed, match="readonly") as failed:
            async with db.writer() as writer:
                await writer.submit_many(fills)
    assert list(failed.value.unwritten) == fills

    async with Database(f"sqlite+aiosqlite:///{path}") as db:  # writable again
        async with db.writer() as writer:
            await writer.submit_many(failed.value.unwritten)
        assert await db.trades.count() == 20


@pytest.mark.postgres
async def test_postgres_gone_past_the_retry_budget_hands_back_the_fills(
    postgres_database_url: str,
) -> None:
    database_url = postgres_database_url
    url = make_url(database_url)
    async with proxy_to(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = Settings(database_url=proxied, writer=FAST_RETRIES)
        async with Database(settings=settings) as db:
            await db.migrate()
            strategy = await db.strategies.create(name="s")
            later = [make_fill(strategy.id, n) for n in range(1, 30)]
            with pytest.raises(WriterFailed) as closing:
                async with db.writer(max_latency=0.01) as writer:
                    await writer.submit(make_fill(strategy.id, 0), wait=True)
                    await proxy.stop()  # the server is gone: connections drop, new ones refused
                    await writer.submit_many(later)
                    with pytest.raises(WriterFailed) as flushing:
                        await writer.flush()
            assert list(flushing.value.unwritten) == later
            assert list(closing.value.unwritten) == later
            await db.engine.dispose()
    async with Database(database_url) as direct:  # the server is back: a new writer carries on
        assert await direct.trades.count() == 1
        async with direct.writer() as writer:
            await writer.submit_many(closing.value.unwritten)
        assert await direct.trades.count() == 30


@pytest.mark.postgres
async def test_postgres_connections_dropped_mid_stream_lose_and_double_nothing(
    postgres_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    database_url = postgres_database_url
    url = make_url(database_url)
    retries = WriterOptions(retry_attempts=10, retry_initial_delay=0.01, retry_max_delay=0.05)
    async with proxy_to(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        async with Database(settings=Settings(database_url=proxied, writer=retries)) as db:
            await db.migrate()
            strategy = await db.strategies.create(name="s")
            fills = [make_fill(strategy.id, n) for n in range(5000)]
            async with db.writer(batch_size=200, max_latency=0) as writer:
                for start in range(0, 5000, 500):
                    await writer.submit_many(fills[start : start + 500])
                    await anyio.sleep(0.01)  # the writer is mid-batch
                    proxy.cut()  # every open connection drops, as on a network blip
                # Re-delivery after the blips, as a reconnecting bot would do.
                await writer.submit_many(fills[:1000])
            assert await db.trades.count() == 5000
            assert writer.unwritten == ()
    assert caplog.text.count("retrying") >= 3


@pytest.mark.postgres
async def test_a_new_connection_ended_while_it_waits_out_the_old_one_is_dropped_in_turn(
    postgres_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A double fault: the writer's connection is ended, then so is the new one while it
    waits out the first one's server process. The next connection waits out both before it
    asks whether the batch committed; every fill is stored once."""
    settings = Settings(database_url=postgres_database_url, writer=FAST_RETRIES)
    async with Database(settings=settings) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="s")
        ended, outlived = end_the_first_waiting_connection(db, monkeypatch)
        async with db.writer(max_latency=0.01) as writer:
            await writer.submit(make_fill(strategy.id, 0), wait=True)
            first = writer.connection_pid
            assert first is not None
            await end_server_process(db, first)
            await writer.submit_many(make_fill(strategy.id, n) for n in range(1, 100))
            await writer.flush()
            (second,) = ended
            assert sorted(outlived) == sorted([first, second])
            assert writer.connection_pid not in (None, first, second)
        assert await db.trades.count() == 100
        assert (writer.unwritten, writer.stats().duplicates) == ((), 0)


@POSTGRES_ROUND_IN_CI
async def test_fills_of_a_deleted_backtest_are_refused_in_bulk_without_holding_up_others(
    db: Database, strategy_id: int
) -> None:
    deleted = await db.backtests.create(
        strategy_id=strategy_id,
        name="gone",
        start_date=T0,
        end_date=T0.replace(year=2025),
        initial_capital=1,
    )
    await db.backtests.delete(deleted.id)
    orphans = [make_fill(strategy_id, n, backtest_id=deleted.id) for n in range(20_000)]
    async with db.writer(max_queue=50_000) as writer:
        for fill in orphans:
            writer.submit_nowait(fill)
        # Split and explained one by one, 20,000 refusals took minutes; found in bulk, moments.
        with anyio.fail_after(60):
            await writer.submit(make_fill(strategy_id, 99_999), wait=True)
    assert await db.trades.count() == 1
    assert writer.stats().rejected == 20_000
    assert len(writer.rejected) == WriterOptions().max_rejected  # the most recent ones
    assert writer.rejected[-1].fill == orphans[-1]
    assert f"backtest with backtest_id={deleted.id} does not exist" in writer.rejected[0].reason

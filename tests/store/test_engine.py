"""SQLite connections: every pooled connection gets the pragmas, and files are private."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import threading
import urllib.parse
from pathlib import Path

import pytest
from sqlalchemy import text

from quantflow_async import Database, InvalidValue, QuantFlowError, Settings, StorageUnavailable

from ..support.faults import alive


@pytest.mark.parametrize("synchronous, expected", [("NORMAL", 1), ("FULL", 2)])
async def test_pragmas_hold_on_every_pooled_connection(
    sqlite_url: str, synchronous: str, expected: int
) -> None:
    settings = Settings(database_url=sqlite_url, synchronous=synchronous, pool_size=4)  # type: ignore[arg-type]
    async with Database(settings=settings) as db:
        connections = [await db.engine.connect() for _ in range(4)]
        try:
            seen = []
            for connection in connections:
                values = []
                for pragma in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout"):
                    values.append((await connection.execute(text(f"PRAGMA {pragma}"))).scalar())
                seen.append(tuple(values))
        finally:
            await asyncio.gather(*(connection.close() for connection in connections))
    assert seen == [("wal", expected, 1, settings.busy_timeout_ms)] * 4


async def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'db.sqlite3'}"
    with pytest.raises(StorageUnavailable, match="no-such-dir.*does not exist"):
        async with Database(url):
            pass
    (tmp_path / "no-such-dir").mkdir()  # the fault removed, the same URL works
    async with Database(url) as db:
        await db.migrate()


async def test_several_databases_live_in_one_process(tmp_path: Path) -> None:
    async with (
        Database(f"sqlite+aiosqlite:///{tmp_path / 'a.sqlite3'}") as a,
        Database(f"sqlite+aiosqlite:///{tmp_path / 'b.sqlite3'}") as b,
    ):
        await a.migrate()
        await b.migrate()
        await a.strategies.create(name="only-in-a")
        assert [s.name for s in await a.strategies.list()] == ["only-in-a"]
        assert await b.strategies.list() == []


async def test_closing_twice_is_fine_and_a_closed_database_says_so(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    async with db:
        await db.migrate()
    await db.aclose()
    with pytest.raises(QuantFlowError, match="not open"):
        await db.strategies.list()


async def test_a_database_dropped_while_open_warns(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    await db.open()
    engine = db.engine
    with pytest.warns(ResourceWarning, match="never closed"):
        del db
        gc.collect()
    await engine.dispose()


async def test_closing_leaves_no_thread_and_no_worker_process(sqlite_url: str) -> None:
    threads_before = set(threading.enumerate())
    async with Database(sqlite_url) as db:
        await db.migrate()
        await asyncio.gather(*(db.strategies.list() for _ in range(5)))  # several connections
        async with db.writer() as writer:
            worker = writer.connection_pid
            assert worker is not None and alive(worker)
        assert not alive(worker)
    # aiosqlite's connection threads end just after their close returns: each must end.
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(timeout=10)
        assert not thread.is_alive(), f"{thread.name} outlived the database"


async def test_a_dropped_connection_whose_close_is_cancelled_still_closes(
    sqlite_url: str,
) -> None:
    # SQLAlchemy closes a dropped connection in a task of its own and, when the wait for it
    # is cancelled, stops the connection's thread at once. The close must end all the same:
    # asyncio.run waits for every task, so a script stopped with Ctrl-C would never exit.
    async with Database(sqlite_url) as db:
        await db.migrate()
        connection = await db.engine.connect()
        await connection.execute(text("SELECT 1"))
        raw = await connection.get_raw_connection()
        thread = raw.driver_connection._thread  # type: ignore[union-attr]
        tasks_before = asyncio.all_tasks()
        dropping = asyncio.ensure_future(connection.invalidate())
        for _ in range(100):  # until the close has started in its own task
            await asyncio.sleep(0)
            closing = asyncio.all_tasks() - tasks_before - {dropping}
            if closing:
                break
        assert closing, "SQLAlchemy no longer closes a dropped connection in a task"
        dropping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dropping
        _, still_closing = await asyncio.wait(closing, timeout=10)
        assert still_closing == set()
        await connection.close()
    thread.join(timeout=10)  # it ends just after its last answer
    assert not thread.is_alive()


async def test_every_request_to_stop_a_connection_is_answered_once_its_thread_stops(
    sqlite_url: str,
) -> None:
    async with Database(sqlite_url) as db:
        await db.migrate()
        async with db.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            first, second, third = driver.stop(), driver.stop(), driver.stop()
            assert first is not None and second is not None and third is not None
            second.cancel()  # a waiter that gave up: the others still get their answer
            await asyncio.wait_for(asyncio.gather(first, third), 10)
            driver._thread.join(timeout=10)
            assert not driver._thread.is_alive()
            connection.sync_connection.invalidate()  # type: ignore[union-attr]


@pytest.mark.parametrize("uri", ["", "&uri=true"])
@pytest.mark.parametrize("name", ["test.sqlite3", "a#b.sqlite3", "a%41.sqlite3", "a?b sp.sqlite3"])
async def test_a_url_asking_for_mode_ro_opens_the_file_read_only(
    tmp_path: Path, migrated_sqlite_file: Path, uri: str, name: str
) -> None:
    # Without uri=true SQLite never sees `mode`: the URL is made a URI, its path escaped.
    shutil.copyfile(migrated_sqlite_file, tmp_path / name)
    escaped = urllib.parse.quote(str(tmp_path / name))
    async with Database(f"sqlite+aiosqlite:///{escaped}?mode=ro{uri}") as db:
        assert await db.strategies.list() == []
        with pytest.raises(StorageUnavailable, match="readonly database"):
            await db.strategies.create(name="never stored")
    assert sorted(path.name for path in tmp_path.iterdir() if "sqlite3" in path.name) == [
        name,
        f"{name}-shm",
        f"{name}-wal",
    ]


@pytest.mark.parametrize("query", ["?mode=RO", "?mode=ro&mode=ro", "?mode=readonly&uri=true"])
async def test_a_mode_sqlite_does_not_know_is_refused_naming_it(
    migrated_sqlite_url: str, query: str
) -> None:
    with pytest.raises(InvalidValue, match="give SQLite's mode once, one of ro, rw, rwc"):
        async with Database(f"{migrated_sqlite_url}{query}"):
            pass


async def test_a_read_only_url_of_a_missing_file_says_it_cannot_create_it(tmp_path: Path) -> None:
    with pytest.raises(StorageUnavailable, match="a URL with mode=ro cannot create it"):
        async with Database(f"sqlite+aiosqlite:///{tmp_path / 'none.sqlite3'}?mode=ro"):
            pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
async def test_in_memory_sqlite_is_refused_with_the_reason(url: str) -> None:
    with pytest.raises(InvalidValue, match="in-memory SQLite .* use a file"):
        async with Database(url):
            pass


async def test_a_database_that_must_not_create_its_file_refuses_a_missing_one(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing.sqlite3'}"
    settings = Settings(database_url=url, create_sqlite_file=False)
    with pytest.raises(StorageUnavailable, match="does not exist; run `quantflow migrate`"):
        async with Database(settings=settings):
            pass
    assert os.listdir(tmp_path) == []


async def test_a_database_that_must_not_create_its_file_opens_an_existing_one(
    sqlite_url: str,
) -> None:
    async with Database(sqlite_url) as db:
        await db.migrate()
    settings = Settings(database_url=sqlite_url, create_sqlite_file=False)
    async with Database(settings=settings) as db:
        assert await db.trades.count() == 0

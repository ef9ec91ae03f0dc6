"""A SQLite file removed after the Database opened it is never made again by a reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantflow_async import Database, StorageUnavailable


async def _migrated(path: Path) -> None:
    async with Database(f"sqlite+aiosqlite:///{path}") as db:
        await db.migrate()


async def test_a_reader_does_not_recreate_a_removed_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.sqlite3"
    await _migrated(path)
    async with Database(f"sqlite+aiosqlite:///{path}") as db:
        path.unlink()
        with pytest.raises(StorageUnavailable, match="removed or replaced"):
            await db.trades.count()
    assert not path.exists()


async def test_a_reader_of_a_uri_does_not_recreate_a_removed_file(tmp_path: Path) -> None:
    path = tmp_path / "gone uri.sqlite3"
    await _migrated(path)
    async with Database(f"sqlite+aiosqlite:///file:{path}?cache=private&uri=true") as db:
        path.unlink()
        with pytest.raises(StorageUnavailable, match="removed or replaced"):
            await db.strategies.list()
    assert not path.exists()


async def test_a_file_removed_between_reads_is_not_recreated(tmp_path: Path) -> None:
    path = tmp_path / "gone later.sqlite3"
    await _migrated(path)
    async with Database(f"sqlite+aiosqlite:///{path}") as db:
        assert await db.trades.count() == 0
        await db.engine.dispose()  # the next read opens a new connection
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with pytest.raises(StorageUnavailable, match="removed or replaced"):
            await db.trades.count()
    assert not path.exists()


async def test_a_file_with_uri_characters_in_its_name_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "odd #name [1].sqlite3"
    async with Database(f"sqlite+aiosqlite:///{path}") as db:
        await db.migrate()
        assert await db.trades.count() == 0
    assert sorted(p.name for p in tmp_path.glob("*.sqlite3")) == [path.name]

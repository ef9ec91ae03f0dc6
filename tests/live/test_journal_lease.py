"""One journal per (strategy, venue) at a time: a second one is refused with Conflict, in the
same process or another, and a holder that dies (SIGKILL) never blocks its own restart."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from quantflow_async import Conflict, Database
from tests.support.databases import migrated_sqlite

HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from quantflow_async import Database

    async def main(url, strategy_id):
        async with Database(url) as db, db.journal(strategy_id=strategy_id, venue="paper"):
            print("open", flush=True)
            await asyncio.sleep(120)

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_a_second_journal_on_the_same_strategy_and_venue_is_refused(
    db: Database, strategy_id: int
) -> None:
    async with db.journal(strategy_id=strategy_id, venue="paper"):
        with pytest.raises(Conflict, match="one journal per strategy and venue"):
            async with db.journal(strategy_id=strategy_id, venue="paper"):
                pass
        async with db.journal(strategy_id=strategy_id, venue="binance"):
            pass  # another venue is another journal
    async with db.journal(strategy_id=strategy_id, venue="paper"):
        pass  # released on close


async def test_a_database_reached_through_a_symbolic_link_has_one_lease(tmp_path: Path) -> None:
    url = migrated_sqlite(tmp_path / "real.sqlite3")
    (tmp_path / "link.sqlite3").symlink_to(tmp_path / "real.sqlite3")
    async with Database(url) as first, Database(url.replace("real", "link")) as second:
        strategy_id = (await first.strategies.create(name="s")).id
        async with first.journal(strategy_id=strategy_id, venue="paper"):
            with pytest.raises(Conflict, match="one journal per strategy and venue"):
                async with second.journal(strategy_id=strategy_id, venue="paper"):
                    pass


async def test_a_journal_held_by_another_process_is_refused_until_that_process_dies(
    db: Database, strategy_id: int, database_url: str
) -> None:
    holder = subprocess.Popen(  # noqa: ASYNC220 - a process to kill, not one to await
        [sys.executable, "-c", HOLDER, database_url, str(strategy_id)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(Conflict):
            async with db.journal(strategy_id=strategy_id, venue="paper"):
                pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()
    for _ in range(100):  # the server may take a moment to see the connection gone
        try:
            async with db.journal(strategy_id=strategy_id, venue="paper"):
                return
        except Conflict:
            await asyncio.sleep(0.05)
    pytest.fail("the lease of a killed holder was never released")

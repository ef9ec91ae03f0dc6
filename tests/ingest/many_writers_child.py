"""One of several processes ingesting into one database through a writer of its own.

    python many_writers_child.py URL STRATEGY_ID BACKTEST_ID INDEX PROCESSES PER_PROCESS

Process INDEX ingests fills INDEX*PER_PROCESS ... and re-delivers a tenth of the next
process's fills, as a venue's second connection would. Prints "written duplicates".
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from quantflow_async import Database, Fill

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def fills(strategy_id: int, backtest_id: int, start: int, count: int) -> list[Fill]:
    return [
        Fill(
            strategy_id=strategy_id,
            backtest_id=backtest_id,
            symbol="BTCUSDT",
            side="buy" if n % 2 else "sell",
            quantity="0.5",
            price=f"{42000 + n % 1000}.12",
            executed_at=T0 + timedelta(milliseconds=n),
            external_id=f"many-{n}",
        )
        for n in range(start, start + count)
    ]


async def main(
    url: str, strategy_id: int, backtest_id: int, index: int, processes: int, per_process: int
) -> None:
    mine = fills(strategy_id, backtest_id, index * per_process, per_process)
    nxt = (index + 1) % processes * per_process
    theirs = fills(strategy_id, backtest_id, nxt, per_process // 10)
    async with Database(url) as db:
        async with db.writer(batch_size=5000, max_queue=20_000) as writer:
            for n in range(0, per_process, 1000):
                await writer.submit_many(mine[n : n + 1000])
                await writer.submit_many(theirs[n // 10 : (n + 1000) // 10])
    stats = writer.stats()
    print(stats.written, stats.duplicates)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], *map(int, sys.argv[2:])))  # type: ignore[arg-type]

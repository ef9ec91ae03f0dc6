"""A program that queues fills in a writer and waits: the test presses Ctrl-C twice.

python ctrl_c_child.py URL STRATEGY_ID COUNT
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from quantflow_async import Database, Fill


async def main(url: str, strategy_id: int, count: int) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    async with Database(url) as db:
        async with db.writer(batch_size=100, max_latency=0, max_queue=count) as writer:
            for n in range(count):
                writer.submit_nowait(
                    Fill(
                        strategy_id=strategy_id,
                        symbol="BTCUSDT",
                        side="buy",
                        quantity="1",
                        price="100",
                        executed_at=start + timedelta(seconds=n),
                    )
                )
            print(f"queued {writer.connection_pid}", flush=True)
            await asyncio.sleep(600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))

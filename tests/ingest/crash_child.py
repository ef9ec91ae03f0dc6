"""Run by test_crash.py in a child process: ingest fills and record each acknowledged one.

    python tests/ingest/crash_child.py DATABASE_URL SYNCHRONOUS STRATEGY_ID ROUND ACK_FILE

A fill's tag is written to ACK_FILE only after `submit(..., wait=True)` or `flush()` has
returned for it. The parent kills this process with SIGKILL at a random moment.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

from quantflow_async import Database, Fill, Settings


def fill(strategy_id: int, tag: str, n: int) -> Fill:
    # Every other fill has no external_id: those are found by the tag in their metadata.
    return Fill(
        strategy_id=strategy_id,
        symbol="BTCUSDT",
        side="buy" if n % 2 else "sell",
        quantity="0.001",
        price=f"{40000 + n}.5",
        executed_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(milliseconds=n),
        external_id=tag if n % 2 else None,
        metadata={"tag": tag},
    )


async def main(url: str, synchronous: str, strategy_id: int, round_: str, ack_path: str) -> None:
    settings = Settings(database_url=url, synchronous=synchronous)  # type: ignore[arg-type]
    ack = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    async with Database(settings=settings) as db, db.writer(batch_size=500, max_latency=0.005) as w:
        n = 0
        while True:
            tags = []
            for _ in range(200):
                tag = f"{round_}-{n}"
                await w.submit(fill(strategy_id, tag, n))
                tags.append(tag)
                n += 1
            await w.flush()
            os.write(ack, "".join(f"{tag}\n" for tag in tags).encode())
            tag = f"{round_}-{n}"
            await w.submit(fill(strategy_id, tag, n), wait=True)
            os.write(ack, f"{tag}\n".encode())
            n += 1


if __name__ == "__main__":
    url, synchronous, strategy, round_, ack_file = sys.argv[1:6]
    asyncio.run(main(url, synchronous, int(strategy), round_, ack_file))

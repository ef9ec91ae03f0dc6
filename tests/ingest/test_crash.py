"""Crash safety: a process killed with SIGKILL at random moments loses no acknowledged fill.

Each round starts a child that ingests through the writer and records a fill as acknowledged
only once flush() or submit(wait=True) returned for it; the test kills the child, reopens the
database and checks every acknowledged fill is there exactly once and the file is intact.
synchronous=NORMAL promises this for a crash of the process; FULL also for a power loss,
which a test cannot cause, so both are run here against process crashes.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from quantflow_async import Database

CHILD = Path(__file__).with_name("crash_child.py")
ROUNDS = 20


def _wait_for_first_ack(ack: Path, child: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ack.exists() and ack.stat().st_size > 0:
            return
        if child.poll() is not None:
            raise AssertionError(
                f"the child exited early: {child.stderr and child.stderr.read()!r}"
            )
        time.sleep(0.01)
    raise AssertionError("the child acknowledged nothing in time")


def _crash_rounds(url: str, synchronous: str, strategy_id: int, folder: Path) -> list[str]:
    rng = random.Random(f"{synchronous}-crash")
    acknowledged: list[str] = []
    for round_ in range(ROUNDS):
        ack = folder / f"ack-{synchronous}-{round_}.txt"
        child = subprocess.Popen(
            [
                sys.executable,
                str(CHILD),
                url,
                synchronous,
                str(strategy_id),
                f"{synchronous[0]}{round_}",
                str(ack),
            ],
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for_first_ack(ack, child)
            time.sleep(rng.uniform(0, 0.4))
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            if child.stderr is not None:
                child.stderr.close()
        acknowledged.extend(ack.read_text().split())
    return acknowledged


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
def test_acknowledged_fills_survive_sigkill_exactly_once(tmp_path: Path, synchronous: str) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crash.sqlite3'}"

    async def prepare() -> int:
        async with Database(url) as db:
            await db.migrate()
            return (await db.strategies.create(name="crash")).id

    strategy_id = asyncio.run(prepare())
    acknowledged = _crash_rounds(url, synchronous, strategy_id, tmp_path)
    assert len(acknowledged) >= ROUNDS * 200  # every round acknowledged at least one flush

    async def check() -> tuple[str, dict[str, int]]:
        async with Database(url) as db, db.engine.connect() as conn:
            integrity = (await conn.execute(text("PRAGMA integrity_check"))).scalar_one()
            rows = await conn.execute(
                text("SELECT json_extract(metadata, '$.tag'), count(*) FROM trades GROUP BY 1")
            )
            return integrity, {tag: count for tag, count in rows}

    integrity, stored = asyncio.run(check())
    assert integrity == "ok"
    missing = [tag for tag in acknowledged if tag not in stored]
    assert missing == [], f"{len(missing)} acknowledged fills were lost, e.g. {missing[:5]}"
    doubled = {tag: count for tag, count in stored.items() if count != 1}
    assert doubled == {}

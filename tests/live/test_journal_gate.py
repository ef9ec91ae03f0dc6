"""The gate between recording and restoring: recordings pass side by side, a restore waits for
those under way and holds new ones back, and a cancelled restore or recording leaves the gate
open."""

from __future__ import annotations

import asyncio

import pytest

from quantflow_async.live.journal_gate import RestoreGate


async def test_a_restore_waits_for_the_recording_under_way_and_holds_the_next_back() -> None:
    gate = RestoreGate()
    steps: list[str] = []
    release = asyncio.Event()

    async def recording(name: str) -> None:
        async with gate:
            steps.append(f"{name} in")
            await release.wait()
            steps.append(f"{name} out")

    async def restoring() -> None:
        async with gate.restoring():
            steps.append("restore")

    first = asyncio.create_task(recording("first"))
    await asyncio.sleep(0)
    restore = asyncio.create_task(restoring())
    await asyncio.sleep(0)
    second = asyncio.create_task(recording("second"))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, restore, second)
    assert steps == ["first in", "first out", "restore", "second in", "second out"]


async def test_a_restore_cancelled_while_it_waits_lets_recordings_through() -> None:
    gate = RestoreGate()
    release = asyncio.Event()

    async def recording() -> None:
        async with gate:
            await release.wait()

    under_way = asyncio.create_task(recording())
    await asyncio.sleep(0)

    async def restoring() -> None:
        async with gate.restoring():
            pytest.fail("the block must not run: the restore was cancelled")

    restore = asyncio.create_task(restoring())
    await asyncio.sleep(0)
    restore.cancel()
    with pytest.raises(asyncio.CancelledError):
        await restore
    async with asyncio.timeout(5):
        async with gate:
            pass
    release.set()
    await under_way


async def test_a_recording_cancelled_while_held_back_does_not_hold_up_the_next_restore() -> None:
    gate = RestoreGate()
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def restoring() -> None:
        async with gate.restoring():
            inside.set()
            await leave.wait()

    restore = asyncio.create_task(restoring())
    await inside.wait()

    async def recording() -> None:
        async with gate:
            pass

    held = asyncio.create_task(recording())
    await asyncio.sleep(0)
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held
    leave.set()
    await restore
    async with asyncio.timeout(5):
        async with gate.restoring():
            pass

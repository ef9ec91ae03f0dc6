"""`quantflow venue serve --start-when-asked`: the replay begins at the first request for bars,
so a bot that is slow to start misses none; a state file made earlier keeps its start."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.support.paper import ManualClock, paper_exchange, write_bars

BARS = [(100.0 + n, 101.0 + n, 99.0 + n, 100.5 + n) for n in range(20)]


async def closed_bars(url: str) -> int:
    params = {"symbol": "BTCUSDT", "interval": "1m", "limit": "1000"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/v3/klines", params=params) as response:
            rows = await response.json()
    return len(rows) - 1  # every row but the one forming


async def test_no_bar_closes_before_the_first_request_for_bars(tmp_path: Path) -> None:
    data = write_bars(tmp_path / "bars.csv", BARS)
    clock = ManualClock(1.0)
    async with paper_exchange(
        tmp_path, data, clock=clock, bar_seconds=1.0, start_when_asked=True
    ) as server:
        clock.to_bar(7)  # seven bars' time passes with nobody asking
        assert server.exchange.forming() == 0
        assert await closed_bars(server.url) == 0  # the first request starts the replay
        clock.now += 3 * clock.bar_ns
        assert await closed_bars(server.url) == 3


async def test_without_it_the_replay_runs_from_when_the_state_file_was_made(
    tmp_path: Path,
) -> None:
    data = write_bars(tmp_path / "bars.csv", BARS)
    clock = ManualClock(1.0)
    async with paper_exchange(tmp_path, data, clock=clock, bar_seconds=1.0) as server:
        clock.to_bar(7)
        assert await closed_bars(server.url) == 7


async def test_a_replay_started_before_a_restart_keeps_its_start(tmp_path: Path) -> None:
    data = write_bars(tmp_path / "bars.csv", BARS)
    state = tmp_path / "state.sqlite"
    clock = ManualClock(1.0)
    options = {"bar_seconds": 1.0, "start_when_asked": True, "state": state, "clock": clock}
    async with paper_exchange(tmp_path, data, **options) as server:
        assert await closed_bars(server.url) == 0
    clock.to_bar(5)
    async with paper_exchange(tmp_path, data, **options) as server:
        assert await closed_bars(server.url) == 5

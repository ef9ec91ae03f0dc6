"""examples/live_bot.py, run as a user runs it: every fill it reports as committed is stored,
also when Ctrl-C stops it mid-run, and it reports how late its event loop ran."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from quantflow_async import Database, Settings, Trade

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "live_bot.py"
COMMITTED = re.compile(r"^committed (\S+) (buy|sell) ([\d.]+) (\S+) @ ([\d.]+)$", re.M)


def bot_env(database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    if database_url is not None:
        env["QUANTFLOW_DATABASE_URL"] = database_url
    return env


def run_bot(cwd: Path, database_url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, env=bot_env(database_url),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def stored_trades(database_url: str) -> dict[str, Trade]:
    """The bot's stored trades by external_id."""

    async def read() -> list[Trade]:
        async with Database(settings=Settings(database_url=database_url)) as db:
            strategy = await db.strategies.get_by_name("live-bot-demo")
            return await db.trades.list(strategy_id=strategy.id, limit=100_000)

    return {trade.external_id: trade for trade in asyncio.run(read()) if trade.external_id}


def test_every_fill_the_bot_reports_is_stored_as_reported(
    tmp_path: Path, database_url: str
) -> None:
    result = run_bot(tmp_path, database_url, "--seconds", "2")
    assert result.returncode == 0, result.stderr
    reported = COMMITTED.findall(result.stdout)
    assert reported, result.stdout
    stored = stored_trades(database_url)
    assert set(stored) == {external_id for external_id, *_ in reported}
    for external_id, side, quantity, symbol, price in reported:
        trade = stored[external_id]
        assert (trade.side, str(trade.quantity), trade.symbol) == (side, quantity, symbol)
        assert trade.price == Decimal(price)
        assert trade.backtest_id is None  # a live trade belongs to no backtest
    assert f"stopped: {len(reported)} fills committed" in result.stdout


def test_the_bot_reports_its_event_loop_lag(tmp_path: Path, sqlite_url: str) -> None:
    result = run_bot(tmp_path, sqlite_url, "--seconds", "1")
    assert result.returncode == 0, result.stderr
    lag = re.search(r"event-loop lag while trading: p50 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+)",
                    result.stdout)  # fmt: skip
    assert lag, result.stdout
    p50, p99, worst = (float(value) for value in lag.groups())
    assert 0 <= p50 <= p99 <= worst


def test_with_no_arguments_but_its_duration_it_trades_on_dev_sqlite3_in_the_working_directory(
    tmp_path: Path,
) -> None:
    result = run_bot(tmp_path, None, "--seconds", "1")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dev.sqlite3").exists()
    assert "trades of strategy 1 stored in all:" in result.stdout


def test_ctrl_c_stops_the_bot_cleanly_and_every_reported_fill_is_stored(
    tmp_path: Path, sqlite_url: str
) -> None:
    bot = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--seconds", "60"], cwd=tmp_path, env=bot_env(sqlite_url),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert bot.stdout is not None
    before: list[str] = []
    deadline = time.monotonic() + 30
    while len(COMMITTED.findall("".join(before))) < 5 and time.monotonic() < deadline:
        before.append(bot.stdout.readline())
    bot.send_signal(signal.SIGINT)
    rest, errors = bot.communicate(timeout=30)
    output = "".join(before) + rest
    assert bot.returncode == 0, errors
    assert "Traceback" not in errors
    reported = {external_id for external_id, *_ in COMMITTED.findall(output)}
    assert len(reported) >= 5
    assert "stopped:" in rest  # it shut down through its own path, not killed mid-step
    assert set(stored_trades(sqlite_url)) == reported

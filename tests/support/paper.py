"""Starting the paper exchange in tests: in-process inside the test's event loop on a free port,
or as a `quantflow venue serve --port 0` subprocess whose printed URL is read back.

    async with paper_exchange(tmp_path, write_bars(tmp_path / "bars.csv", BARS)) as exchange:
        async with ccxt_binance(exchange.url) as client:
            await client.create_order("BTC/USDT", "market", "buy", 1, params={"clientOrderId": "a"})

`ManualClock` replaces the wall clock in-process, so a test decides which bar is forming.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from quantflow_async.live.ccxt_client import binance_client
from quantflow_async.live.paper.config import PaperExchangeConfig
from quantflow_async.live.paper.server import PaperExchangeServer

START = datetime(2024, 1, 1, tzinfo=UTC)
LISTENING = re.compile(r"^paper exchange (\S+) on (http://\S+) \(state (.+)\)$")

Ohlc = tuple[float, float, float, float]


def write_bars(
    path: Path,
    rows: Sequence[Ohlc],
    *,
    start: datetime = START,
    step: timedelta = timedelta(minutes=1),
    volume: float = 10.0,
) -> Path:
    """A bars CSV of `rows` (open, high, low, close), `step` apart from `start`."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", "open", "high", "low", "close", "volume"])
        for k, (o, h, low, c) in enumerate(rows):
            writer.writerow(
                [(start + k * step).isoformat(), repr(o), repr(h), repr(low), repr(c), volume]
            )
    return path


def bar_time_ms(
    index: int, *, start: datetime = START, step: timedelta = timedelta(minutes=1)
) -> int:
    """The data time (ms) of bar `index` of a file `write_bars` wrote with the same start/step."""
    return int((start + index * step).timestamp() * 1000)


class ManualClock:
    """A wall clock that moves only when told: `clock.to_bar(k)` puts bar k in the middle of
    forming (for an exchange started with this clock and `bar_seconds`)."""

    def __init__(self, bar_seconds: float) -> None:
        self.bar_ns = round(bar_seconds * 1e9)
        self.t0 = time.time_ns()
        self.now = self.t0

    def __call__(self) -> int:
        return self.now

    def to_bar(self, index: int) -> None:
        self.now = self.t0 + index * self.bar_ns + self.bar_ns // 2


@asynccontextmanager
async def paper_exchange(
    tmp_path: Path,
    data: Path,
    *,
    symbol: str = "BTCUSDT",
    state: Path | None = None,
    clock: ManualClock | None = None,
    **options: Any,
) -> AsyncIterator[PaperExchangeServer]:
    """A paper exchange in this event loop on 127.0.0.1 and a free port, closed on exit.

    `options` are `PaperExchangeConfig.of`'s (bar_seconds, cash, commission, api_key, ...).
    With a `clock`, the replay follows it instead of the wall clock.
    """
    config = PaperExchangeConfig.of(
        data=data, symbol=symbol, state=state or tmp_path / "paper.sqlite", port=0, **options
    )
    server = PaperExchangeServer.open(config, clock=clock or time.time_ns)
    try:
        await server.start()
        yield server
    finally:
        await server.aclose()


@asynccontextmanager
async def ccxt_binance(
    url: str, *, api_key: str = "key", secret: str = "secret"
) -> AsyncIterator[Any]:
    """ccxt's async binance pointed at `url`, markets loaded, closed on exit."""
    client = binance_client(url, api_key=api_key, secret=secret)
    try:
        await client.load_markets()
        yield client
    finally:
        await client.close()


class PaperProcess:
    """`quantflow venue serve` as a child process; `url` is what it printed once listening."""

    def __init__(self, process: subprocess.Popen[str], url: str, line: str) -> None:
        self.process = process
        self.url = url
        self.line = line

    def kill(self) -> None:
        """SIGKILL: the exchange gets no chance to tidy up."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send `signum` and return the exit status."""
        self.process.send_signal(signum)
        return self.process.wait(timeout=10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def serve_command(
    data: Path, state: Path, *, symbol: str = "BTCUSDT", extra: Sequence[str] = ()
) -> list[str]:
    return [
        sys.executable, "-m", "quantflow_async.cli", "venue", "serve",
        "--data", str(data), "--symbol", symbol, "--port", "0", "--state", str(state), *extra,
    ]  # fmt: skip


@contextmanager
def paper_process(
    data: Path,
    state: Path,
    *,
    symbol: str = "BTCUSDT",
    extra: Sequence[str] = (),
    timeout: float = 30.0,
) -> Iterator[PaperProcess]:
    """Start `quantflow venue serve --port 0 ...` and wait for its one line; killed on exit."""
    process = subprocess.Popen(
        serve_command(data, state, symbol=symbol, extra=extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    child = PaperProcess(process, "", "")
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()  # the server prints it once listening
        if not line:
            child.close()
            stderr = process.stderr.read() if process.stderr else ""
            raise RuntimeError(
                f"paper exchange did not start (status {process.returncode}): {stderr}"
            )
        match = LISTENING.match(line)
        if match is None:
            raise RuntimeError(f"unexpected first line from the paper exchange: {line!r}")
        child.url, child.line = match.group(2), line
        yield child
    finally:
        child.close()

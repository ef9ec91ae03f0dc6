"""Starting the paper exchange in tests: in-process inside the test's event loop on a free port,
or as a `quantflow venue serve --port 0` subprocess whose printed URL is read back; `PaperHttp`
speaks to it in raw signed HTTP.

    async with paper_exchange(tmp_path, write_bars(tmp_path / "bars.csv", BARS)) as exchange:
        async with ccxt_binance(exchange.url) as client:
            await client.create_order("BTC/USDT", "market", "buy", 1, params={"clientOrderId": "a"})

`ManualClock` replaces the wall clock in-process, so a test decides which bar is forming.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from quantflow_async.live.ccxt_client import binance_client
from quantflow_async.live.paper.config import PaperExchangeConfig
from quantflow_async.live.paper.server import PaperExchangeServer

START = datetime(2024, 1, 1, tzinfo=UTC)
LISTENING = re.compile(r"^paper exchange (\S+) on (http://\S+) \(state (.+)\)$")
KEY, SECRET = "test-key", "test-secret"

Ohlc = tuple[float, float, float, float]


def write_bars(
    path: Path,
    rows: Sequence[Ohlc],
    *,
    start: datetime = START,
    step: timedelta = timedelta(minutes=1),
    volume: float | Sequence[float] | None = 10.0,
) -> Path:
    """A bars CSV of `rows` (open, high, low, close), `step` apart from `start`; `volume` is
    every bar's, or one per bar, or None for a file without a volume column."""
    volumes = [volume] * len(rows) if volume is None or isinstance(volume, float | int) else volume
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["time", "open", "high", "low", "close", "volume"][: 5 if volume is None else 6]
        )
        for k, ((o, h, low, c), v) in enumerate(zip(rows, volumes, strict=True)):
            prices = [repr(o), repr(h), repr(low), repr(c)]
            writer.writerow(
                [(start + k * step).isoformat(), *prices, *([] if v is None else [repr(v)])]
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


@dataclass
class PaperHttp:
    """Raw HTTP to the exchange, signing like ccxt when `secret` is set."""

    session: aiohttp.ClientSession
    url: str
    clock: ManualClock
    server: PaperExchangeServer
    key: str = KEY
    secret: str = SECRET

    async def call(
        self, method: str, path: str, params: dict[str, Any] | None = None, *, sign: bool = True
    ) -> tuple[int, Any]:
        params = dict(params or {})
        query = urlencode(params)
        if sign:
            params.setdefault("timestamp", int(time.time() * 1000))
            query = urlencode(params)
            digest = hmac.new(self.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
            query += f"&signature={digest}"
        headers = {"X-MBX-APIKEY": self.key}
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = await self.session.post(self.url + path, data=query, headers=headers)
        else:
            target = self.url + path + (f"?{query}" if query else "")
            response = await self.session.request(method, target, headers=headers)
        async with response:
            return response.status, await response.json()

    async def order(self, **params: Any) -> tuple[int, Any]:
        return await self.call("POST", "/api/v3/order", {"symbol": "BTCUSDT", **params})

    async def balances(self) -> dict[str, str]:
        _, account = await self.call("GET", "/api/v3/account")
        return {b["asset"]: b["free"] for b in account["balances"]}

    async def all_orders(self) -> list[dict[str, Any]]:
        _, orders = await self.call("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"})
        return list(orders)


def market_order(side: str, quantity: str, client_id: str) -> dict[str, str]:
    return {"side": side, "type": "MARKET", "quantity": quantity, "newClientOrderId": client_id}


def limit_order(
    side: str, quantity: str, price: str, client_id: str, **extra: str
) -> dict[str, str]:
    return {
        "side": side, "type": "LIMIT", "quantity": quantity, "price": price,
        "timeInForce": "GTC", "newClientOrderId": client_id, **extra,
    }  # fmt: skip


@asynccontextmanager
async def paper_http(
    tmp_path: Path,
    rows: Sequence[Ohlc],
    *,
    volume: float | Sequence[float] | None = 10.0,
    clock: ManualClock | None = None,
    **options: Any,
) -> AsyncIterator[PaperHttp]:
    """`paper_exchange` over `rows` on a `ManualClock` of 1 s bars (`clock`, or a new one), with
    a `PaperHttp` to it. `options` are `PaperExchangeConfig.of`'s (state, max_volume_share, ...).
    """
    clock = clock or ManualClock(bar_seconds=1.0)
    data = write_bars(tmp_path / "bars.csv", rows, volume=volume)
    async with paper_exchange(tmp_path, data, clock=clock, **options) as server:
        async with aiohttp.ClientSession() as session:
            yield PaperHttp(session, server.url, clock, server)


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

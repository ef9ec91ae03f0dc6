"""Starting and stopping the paper exchange: the HTTP listener and the task that evaluates
resting orders as each bar closes. `PaperExchangeServer` owns both and closes both.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import warnings
from typing import Any

from quantflow_async.extras import require_extra
from quantflow_async.live.paper.config import PaperExchangeConfig
from quantflow_async.live.paper.exchange import PaperExchange
from quantflow_async.live.paper.market import Clock

logger = logging.getLogger(__name__)


class ServerState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class PaperExchangeServer:
    """A paper exchange listening on `config.host`:`config.port` (0: a free port).

    `PaperExchangeServer.open(config)` reads the bars and the state file, raising every mistake
    before anything listens; `start()` listens; `aclose()` (idempotent) stops listening, ends
    the bar task and closes the state file. Also an async context manager.
    """

    def __init__(self, exchange: PaperExchange) -> None:
        require_extra("aiohttp.web", extra="live", purpose="the paper exchange")
        self.exchange = exchange
        self.config = exchange.config
        self.state = ServerState.NEW
        self._runner: Any = None
        self._bars_task: asyncio.Task[None] | None = None
        self._port: int | None = None

    @classmethod
    def open(
        cls, config: PaperExchangeConfig, *, clock: Clock = time.time_ns
    ) -> PaperExchangeServer:
        require_extra("aiohttp.web", extra="live", purpose="the paper exchange")
        exchange = PaperExchange.open(config, clock)
        try:
            return cls(exchange)
        except BaseException:
            exchange.close()
            raise

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the paper exchange is not listening yet")
        return self._port

    @property
    def url(self) -> str:
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self.state is not ServerState.NEW:
            raise RuntimeError(f"the paper exchange cannot start: it is {self.state.value}")
        from aiohttp import web

        from quantflow_async.live.paper.binance_api import BinanceApi

        self.exchange.catch_up()  # downtime is caught up before the first answer
        runner = web.AppRunner(
            BinanceApi(self.exchange).application(), access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._bars_task = asyncio.create_task(self._close_bars(), name="paper-exchange-bars")
        self.state = ServerState.RUNNING
        logger.info("paper exchange %s listening on %s", self.config.symbol, self.url)

    async def _close_bars(self) -> None:
        """Evaluate resting orders at each bar boundary, so fills happen without a request."""
        replay = self.exchange.replay
        if replay is None:  # it waits for the first request for bars
            started = asyncio.Event()
            self.exchange.on_start = started.set
            await started.wait()
            replay = self.exchange.start()
        clock = self.exchange.clock
        while (boundary := replay.next_boundary_ns(clock())) is not None:
            await asyncio.sleep(max(0.0, (boundary - clock()) / 1e9) + 0.0005)
            self.exchange.catch_up()
        self.exchange.catch_up()

    async def aclose(self) -> None:
        if self.state is ServerState.CLOSED:
            return
        self.state = ServerState.CLOSED
        task, self._bars_task = self._bars_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                logger.exception("paper exchange: the bar task failed")
        runner, self._runner = self._runner, None
        try:
            if runner is not None:
                await runner.cleanup()
        finally:
            self.exchange.close()
        logger.info("paper exchange %s closed", self.config.symbol)

    async def __aenter__(self) -> PaperExchangeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if getattr(self, "state", ServerState.CLOSED) is not ServerState.CLOSED:
            warnings.warn(
                f"unclosed paper exchange {self.config.symbol}", ResourceWarning, stacklevel=1
            )

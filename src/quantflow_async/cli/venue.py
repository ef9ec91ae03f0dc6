"""`quantflow venue serve`: the paper exchange, a local Binance spot REST API over a bars file.

Every mistake (a missing file, bad bars, a bad option) is found before anything listens.
"""

from __future__ import annotations

import argparse
import signal
from typing import TYPE_CHECKING

from quantflow_async.cli.parsing import Parser, add_command, add_group
from quantflow_async.errors import InvalidValue

if TYPE_CHECKING:
    from quantflow_async.live.paper.server import PaperExchangeServer


def serve(args: argparse.Namespace) -> None:
    # the paper exchange (and aiohttp with it) loads only when this command runs
    import asyncio

    from quantflow_async.extras import require_extra
    from quantflow_async.live.paper.config import PaperExchangeConfig
    from quantflow_async.live.paper.server import PaperExchangeServer

    require_extra("aiohttp.web", extra="live", purpose="quantflow venue serve")
    config = PaperExchangeConfig.of(
        data=args.data,
        symbol=args.symbol,
        state=args.state,
        quote=args.quote,
        host=args.host,
        port=args.port,
        bar_seconds=args.bar_seconds,
        cash=args.cash,
        commission=args.commission,
        max_volume_share=args.max_volume_share,
        api_key=args.api_key,
        api_secret=args.api_secret,
        start_when_asked=args.start_when_asked,
    )
    if not config.data.is_file():
        raise InvalidValue("--data", f"{config.data} is not a file")
    server = PaperExchangeServer.open(config)
    asyncio.run(_run(server))


async def _run(server: PaperExchangeServer) -> None:
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with server:
            config = server.config
            print(
                f"paper exchange {config.symbol} on {server.url} (state {config.state})", flush=True
            )
            await stop.wait()
    finally:
        await server.aclose()  # also when start() failed
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65_535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {port}")
    return port


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    verbs = add_group(commands, "venue")
    command = add_command(
        verbs,
        "serve",
        "serve a paper exchange: Binance spot's REST API replaying a bars file, filling orders "
        "by the backtest's rules, keeping its state in a SQLite file",
        serve,
    )
    command.add_argument(
        "--data", required=True, metavar="FILE", help="OHLCV bars: CSV, or Parquet with pyarrow"
    )
    command.add_argument("--symbol", required=True, help="the Binance symbol, e.g. BTCUSDT")
    command.add_argument(
        "--port", required=True, type=_port, help="port to listen on (0: a free one)"
    )
    command.add_argument(
        "--state",
        required=True,
        metavar="FILE",
        help="the exchange's SQLite file (created if missing)",
    )
    command.add_argument(
        "--quote", help="the quote asset, when the symbol's suffix is not a known one"
    )
    command.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    command.add_argument(
        "--bar-seconds",
        type=float,
        default=1.0,
        metavar="S",
        help="wall seconds per bar (1.0; >= 0.001)",
    )
    command.add_argument(
        "--start-when-asked",
        action="store_true",
        help="start the replay at the first request for bars (klines), not when a new state "
        "file is made: a bot slow to start misses no bar",
    )
    command.add_argument(
        "--cash", default="10000", help="the quote asset's starting balance (10000)"
    )
    command.add_argument(
        "--commission", default="0", metavar="RATE", help="fee, a fraction of notional (0)"
    )
    command.add_argument(
        "--max-volume-share",
        default="1",
        metavar="F",
        help="resting limit orders fill at most F x each bar's volume at its close, over several "
        "bars if need be (0 < F <= 1; 1: they fill whole, as in the backtest)",
    )
    command.add_argument(
        "--api-key", metavar="K", help="check requests as Binance does, with this key..."
    )
    command.add_argument("--api-secret", metavar="S", help="...and this secret")

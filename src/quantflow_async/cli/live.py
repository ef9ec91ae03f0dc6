"""`quantflow live run`: a backtest strategy, unchanged, trading on a venue through the journal."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from quantflow_async.cli.output import json_object, plain
from quantflow_async.cli.parsing import Parser, add_command, add_group, on_database
from quantflow_async.config import Settings

if TYPE_CHECKING:
    import anyio

    from quantflow_async.live.credentials import VenueCredentials

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


async def run(settings: Settings, args: argparse.Namespace) -> None:
    import anyio

    from quantflow_async.backtest.strategies import strategy_class
    from quantflow_async.cli.backtest import stored_strategy_id
    from quantflow_async.database import Database
    from quantflow_async.live.ccxt_client import checked_venue_url
    from quantflow_async.live.ccxt_venue import CcxtVenue
    from quantflow_async.live.runner import LiveOptions, run_live

    # Every mistake in the input is found before the database or the venue is touched.
    venue_url = checked_venue_url(args.venue)
    cls = strategy_class(args.strategy)
    cls(args.config)
    options = LiveOptions(
        symbol=args.symbol,
        timeframe=args.timeframe,
        commission=args.commission,
        quote_asset=args.quote,
        poll_interval=args.poll,
        cancel_on_exit=args.cancel_on_exit,
        max_bars=args.bars,
        idle_exit=args.idle_exit,
    )
    credentials = _credentials(args)
    stop = anyio.Event()
    async with Database(settings=settings) as db:
        name = args.strategy_name or args.strategy
        strategy_id = await stored_strategy_id(db, name)
        local = (venue_url.hostname or "") in _LOOPBACK
        kind = "paper" if local else "binance"
        venue = CcxtVenue.connect(args.venue, credentials, name=args.venue_name or kind)
        try:
            if args.venue_name is None and local:
                # Two paper exchanges both number their trades from 1: name the account.
                account = await venue.account_id()
                venue.name = f"paper-{account}" if account else kind
            with _stopping_on_signals(stop):
                report = await run_live(
                    db, cls, args.config, venue, strategy_id=strategy_id, options=options, stop=stop
                )
        finally:
            await venue.aclose()
    # None: stopped while the venue did not answer, before the reconciliation ended
    lines = report.reconciled.summary() if report.reconciled is not None else None
    document = {
        "strategy": args.strategy,
        "strategy_id": strategy_id,
        "venue": venue.name,
        "bars_decided": report.bars_decided,
        "orders_sent": report.orders_sent,
        "orders_rejected": report.orders_rejected,
        "orders_cancelled_on_exit": report.orders_cancelled_on_exit,
        "stopped_by": report.stopped_by,
        "reconciliation": None if lines is None else list(lines),
    }
    if args.json:
        print(json.dumps(plain(document), separators=(",", ":")))
        return
    if lines is None:
        print("not reconciled: stopped before the venue answered; the next start reconciles")
    for line in lines or ():
        print(f"reconciled: {line}")
    print(
        f"{name} on {venue.name}: {report.bars_decided} bars decided, {report.orders_sent} orders "
        f"sent ({report.orders_rejected} rejected); {_STOPS[report.stopped_by]}"
    )


_STOPS: Final = {
    "stop": "stopped when asked (Ctrl-C, SIGTERM)",
    "idle": "stopped: no new bar came within --idle-exit",
    "max_bars": "stopped after --bars bars",
}
"""The end of a run's summary line, by `LiveRunReport.stopped_by`."""


@contextlib.contextmanager
def _stopping_on_signals(stop: anyio.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set `stop`: the runner finishes its step, flushes and exits 0. A
    second one interrupts at once (what was journaled stays journaled)."""
    import asyncio

    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(number: int) -> None:
        received.append(number)
        if len(received) > 1:
            raise KeyboardInterrupt
        stop.set()  # first: a stderr whose reader is gone must not keep the runner going
        with contextlib.suppress(OSError):
            print(
                "stopping: finishing the current step, then flushing the journal", file=sys.stderr
            )

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, on_signal, number)
    try:
        yield
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)


def _credentials(args: argparse.Namespace) -> VenueCredentials:
    from quantflow_async.live.credentials import API_KEY_ENV, VenueCredentials

    if args.api_key or args.api_secret:
        if not (args.api_key and args.api_secret):
            raise ValueError("--api-key and --api-secret go together; give both or neither")
        return VenueCredentials(args.api_key, args.api_secret)
    if args.credentials_file:
        return VenueCredentials.from_file(args.credentials_file)
    if os.environ.get(API_KEY_ENV):
        return VenueCredentials.from_env()
    return VenueCredentials.placeholder()


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    verbs = add_group(commands, "live")
    command = add_command(
        verbs,
        "run",
        "run a backtest strategy on a venue's closed bars; its orders are journaled, restored "
        "and reconciled after a restart (on a database `quantflow migrate` made)",
        on_database(run, creates_database=False),
    )
    command.add_argument("strategy", metavar="STRATEGY", help="a built-in strategy, e.g. sma_cross")
    command.add_argument("--venue", required=True, metavar="URL", help="the exchange's base URL")
    command.add_argument("--symbol", required=True, help="the symbol to trade, e.g. BTCUSDT")
    command.add_argument(
        "--config",
        type=json_object,
        default={},
        metavar="JSON",
        help="""the strategy's parameters, e.g. '{"fast": 10, "slow": 20}' or @config.json""",
    )
    command.add_argument(
        "--strategy-name", metavar="NAME", help="the stored strategy (default: STRATEGY)"
    )
    command.add_argument(
        "--venue-name",
        metavar="NAME",
        help="the venue's name in the journal (default: paper-<account id> for a paper "
        "exchange on this machine, else binance)",
    )
    command.add_argument("--quote", metavar="ASSET", help="the symbol's quote asset, if unusual")
    command.add_argument(
        "--commission", type=float, default=0.0, metavar="RATE", help="the venue's fee rate (0)"
    )
    command.add_argument("--timeframe", default="1m", help="the bars' timeframe (1m)")
    command.add_argument(
        "--poll", type=float, default=0.05, metavar="SECONDS", help="bar polling interval (0.05)"
    )
    command.add_argument(
        "--cancel-on-exit", action="store_true", help="cancel our open orders when stopping"
    )
    command.add_argument("--bars", type=int, metavar="N", help="stop after deciding on N bars")
    command.add_argument(
        "--idle-exit",
        type=float,
        metavar="SECONDS",
        help="stop when no new bar started for this long (the end of a replay)",
    )
    command.add_argument("--api-key", help="the venue's API key (or $QUANTFLOW_VENUE_API_KEY)")
    command.add_argument("--api-secret", help="its secret (or $QUANTFLOW_VENUE_API_SECRET)")
    command.add_argument(
        "--credentials-file",
        metavar="FILE",
        help='JSON {"api_key": ..., "api_secret": ...}, readable by its owner only',
    )
    command.add_argument("--json", action="store_true", help="print one JSON object at the end")

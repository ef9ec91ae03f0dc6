"""Crash rounds: a bot killed with SIGKILL at random moments and at every step of an order's way.

After each kill, a restart restores and reconciles the journal; then the journal must equal the
paper exchange's own record: every order with the same status and filled quantity, every
exchange trade stored exactly once, the position equal to the exchange's balance, no order
sent twice, and no order the exchange never knew of unless it is marked never_sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from quantflow_async import Database, Settings
from quantflow_async.errors import Conflict
from quantflow_async.live.ccxt_client import binance_client
from quantflow_async.live.ccxt_venue import CcxtVenue
from quantflow_async.live.credentials import VenueCredentials
from quantflow_async.live.journal import OrderJournal
from tests.live.crash_bot import KILL_POINTS, SYMBOL, VENUE
from tests.support.paper import PaperProcess, paper_process, write_bars
from tests.support.walks import random_walk

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 10.0  # how long a killed bot's lease may outlive it, on a loaded machine
STATUS_OF_EXCHANGE = {
    "NEW": "open",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "cancelled",
    "EXPIRED": "expired",
    "REJECTED": "rejected",
}


@dataclass
class Zygote:
    """The process that forks one bot per round (tests/live/crash_bot.py)."""

    process: subprocess.Popen[str]

    def start(self, spec: dict[str, object]) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(spec) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line.startswith("started "), line
        return int(line.split()[1])

    def ended(self) -> int:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("ended "), line
        return int(line.split()[2])


@pytest.fixture
def zygote() -> Iterator[Zygote]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.live.crash_bot"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield Zygote(process)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def exchange(tmp_path: Path) -> Iterator[PaperProcess]:
    bars = write_bars(tmp_path / "bars.csv", random_walk(20_000, seed=7))
    with paper_process(
        bars, tmp_path / "exchange.sqlite3", symbol=SYMBOL,
        extra=["--bar-seconds", "0.25", "--cash", "100000000", "--max-volume-share", "0.1"],
    ) as paper:  # fmt: skip
        yield paper


class Witness:
    """Reads the exchange's own record, and reconciles as a restarted bot does (one client and
    one venue for all rounds: making a ccxt client costs a tenth of a second)."""

    def __init__(self, url: str) -> None:
        self.reader = binance_client(url, api_key="reader", secret="reader")
        self.venue = CcxtVenue.connect(url, VenueCredentials.placeholder(), name=VENUE)

    async def aclose(self) -> None:
        await self.reader.close()
        await self.venue.aclose()


@contextlib.asynccontextmanager
async def _journal_once_the_killed_bot_let_go(
    db: Database, strategy_id: int
) -> AsyncIterator[OrderJournal]:
    """The strategy's journal. On PostgreSQL a killed bot's lease (an advisory lock of its
    session) goes only once the server has seen its connection close, which on a loaded
    machine can take a moment after the process is gone: the lease is asked for again while
    it is said to be held elsewhere, for up to LEASE_SECONDS."""
    async with contextlib.AsyncExitStack() as stack:
        with anyio.fail_after(LEASE_SECONDS):
            while True:
                try:
                    journal = await stack.enter_async_context(
                        db.journal(strategy_id=strategy_id, venue=VENUE)
                    )
                    break
                except Conflict:
                    await anyio.sleep(0.05)
        yield journal


async def _check_journal_equals_exchange(
    database_url: str, witness: Witness, strategy_id: int
) -> None:
    """Reconcile as a restarted bot does, then compare the journal with the exchange's record.

    The exchange fills resting orders at each bar's close on its own, so the comparison is
    made with a record that did not change while the journal was reconciled.
    """
    for _ in range(50):
        before = await _exchange_record(witness.reader)
        async with Database(settings=Settings(database_url=database_url)) as db:
            async with _journal_once_the_killed_bot_let_go(db, strategy_id) as journal:
                await journal.restore()
                await journal.reconcile(witness.venue, symbols=(SYMBOL,))
            journal_orders = {
                order.client_order_id: order
                for order in await db.orders.list(strategy_id=strategy_id, limit=100_000)
            }
            stored = await db.trades.list(strategy_id=strategy_id, limit=100_000)
            positions = {p.symbol: p for p in await db.orders.positions(strategy_id=strategy_id)}
        if await _exchange_record(witness.reader) == before:
            break
    else:
        raise AssertionError("the exchange never held still for a whole reconciliation")
    exchange_orders, exchange_trades, base_balance = before

    for cid, seen in exchange_orders.items():
        assert cid in journal_orders, f"the exchange has order {cid} the journal never knew"
        order = journal_orders[cid]
        assert order.status == STATUS_OF_EXCHANGE[seen["status"]], (cid, order, seen)
        assert order.filled_quantity == Decimal(seen["executedQty"]), (cid, order, seen)
    for cid, order in journal_orders.items():
        if cid not in exchange_orders:
            assert order.status == "rejected", f"{cid} is {order.status} and not at the exchange"
            events = await _events(database_url, order.id)
            assert "never_sent" in {event.reason for event in events}, (cid, events)
    stored_ids = [trade.external_id for trade in stored]
    assert len(stored_ids) == len(set(stored_ids)), "a fill is stored twice"
    assert sorted(stored_ids) == sorted(f"{VENUE}:{t['id']}" for t in exchange_trades)
    held = positions[SYMBOL].quantity if SYMBOL in positions else Decimal(0)
    assert held == base_balance


async def _events(database_url: str, order_id: int) -> list[object]:
    async with Database(settings=Settings(database_url=database_url)) as db:
        return list(await db.orders.events(order_id))


async def _exchange_record(
    client: Any,
) -> tuple[dict[str, dict[str, str]], list[dict[str, str]], Decimal]:
    """Every order and trade the exchange holds (its own raw answers) and the base balance."""
    orders: dict[str, dict[str, str]] = {}
    after = 0
    while True:
        page = await client.privateGetAllOrders(
            {"symbol": SYMBOL, "orderId": after + 1, "limit": 1000}
        )
        for raw in page:
            assert raw["clientOrderId"] not in orders, "one client order id sent twice"
            orders[raw["clientOrderId"]] = raw
        if len(page) < 1000:
            break
        after = int(page[-1]["orderId"])
    trades: list[dict[str, str]] = []
    after = -1
    while True:
        page = await client.privateGetMyTrades(
            {"symbol": SYMBOL, "fromId": after + 1, "limit": 1000}
        )
        trades.extend(page)
        if len(page) < 1000:
            break
        after = int(page[-1]["id"])
    account = await client.privateGetAccount()
    base = SYMBOL.removesuffix("USDT")
    balance = next(
        (
            Decimal(b["free"]) + Decimal(b["locked"])
            for b in account["balances"]
            if b["asset"] == base
        ),
        Decimal(0),
    )
    return orders, trades, balance


def _rounds(
    zygote: Zygote,
    exchange: PaperProcess,
    database_url: str,
    strategy_id: int,
    *,
    rounds: int,
    seed: int,
) -> dict[str, int]:
    return asyncio.run(
        _rounds_in_one_loop(zygote, exchange, database_url, strategy_id, rounds=rounds, seed=seed)
    )


async def _rounds_in_one_loop(
    zygote: Zygote,
    exchange: PaperProcess,
    database_url: str,
    strategy_id: int,
    *,
    rounds: int,
    seed: int,
) -> dict[str, int]:
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    witness = Witness(exchange.url)
    try:
        for number in range(rounds):
            kill_at, status = await _one_round(zygote, exchange, database_url, strategy_id, rng)
            assert status in (0, -signal.SIGKILL), f"round {number}: the bot failed ({status})"
            outcome = f"{kill_at or 'random'}:{'killed' if status else 'finished'}"
            seen[outcome] = seen.get(outcome, 0) + 1
            await _check_journal_equals_exchange(database_url, witness, strategy_id)
    finally:
        await witness.aclose()
    return seen


async def _one_round(
    zygote: Zygote,
    exchange: PaperProcess,
    database_url: str,
    strategy_id: int,
    rng: random.Random,
) -> tuple[str | None, int]:
    """One bot, killed; its kill point (None: at a random moment) and exit status."""
    kill_at = rng.choice((None, *KILL_POINTS))  # None: killed by the test at a random moment
    spec = {
        "url": exchange.url,
        "database_url": database_url,
        "strategy_id": strategy_id,
        "seed": rng.randrange(2**32),
        "kill_at": kill_at,
        # A reconciliation asks for balances once: kill at the first.
        "nth": 1 if kill_at == "in_reconcile" else rng.randint(1, 3),
        "actions": 25,
    }
    pid = await asyncio.to_thread(zygote.start, spec)
    if kill_at is None:
        await asyncio.sleep(rng.uniform(0.02, 0.4))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return kill_at, await asyncio.to_thread(zygote.ended)


async def _partly_filled_orders(database_url: str, strategy_id: int) -> int:
    """Orders that were filled in part: some filled, some left (still open, or cancelled)."""
    async with Database(settings=Settings(database_url=database_url)) as db:
        orders = await db.orders.list(strategy_id=strategy_id, limit=100_000)
    return sum(1 for order in orders if 0 < order.filled_quantity < order.quantity)


async def _strategy(database_url: str, name: str = "crash-bot") -> int:
    async with Database(settings=Settings(database_url=database_url)) as db:
        await db.migrate()
        return (await db.strategies.create(name=name)).id


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sqlite_journal_equals_the_exchange_after_every_kill(
    zygote: Zygote, exchange: PaperProcess, sqlite_url: str
) -> None:
    strategy_id = asyncio.run(_strategy(sqlite_url))
    seen = _rounds(
        zygote,
        exchange,
        sqlite_url,
        strategy_id,
        rounds=int(os.environ.get("CRASH_ROUNDS", "140")),
        seed=1,
    )
    killed = {point for point, count in seen.items() if point.endswith(":killed") and count}
    assert {f"{point}:killed" for point in ("random", *KILL_POINTS)} <= killed, seen
    assert asyncio.run(_partly_filled_orders(sqlite_url, strategy_id)) > 0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_postgres_journal_equals_the_exchange_after_every_kill(
    zygote: Zygote, exchange: PaperProcess, postgres_database_url: str
) -> None:
    strategy_id = asyncio.run(_strategy(postgres_database_url))
    seen = _rounds(zygote, exchange, postgres_database_url, strategy_id, rounds=60, seed=2)
    assert sum(count for point, count in seen.items() if point.endswith(":killed")) >= 40, seen


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_live_runner_killed_at_random_restarts_to_the_exchanges_record(
    exchange: PaperProcess, sqlite_url: str
) -> None:
    """`quantflow live run` itself, SIGKILLed at random moments while it trades on every bar."""
    strategy_id = asyncio.run(_strategy(sqlite_url, "sma_cross"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    env["QUANTFLOW_DATABASE_URL"] = sqlite_url
    command = [
        sys.executable, "-m", "quantflow_async.cli", "live", "run", "sma_cross",
        "--venue", exchange.url, "--symbol", SYMBOL, "--venue-name", VENUE,
        "--config", '{"fast": 2, "slow": 3}', "--poll", "0.02",
    ]  # fmt: skip

    async def rounds(count: int) -> None:
        rng = random.Random(3)
        witness = Witness(exchange.url)
        try:
            for _ in range(count):
                runner = subprocess.Popen(  # noqa: ASYNC220 - started, then killed at random
                    command, env=env, stderr=subprocess.PIPE, text=True
                )
                await asyncio.sleep(rng.uniform(1.0, 3.0))
                runner.kill()
                _, err = await asyncio.to_thread(runner.communicate, timeout=30)
                assert "Traceback" not in err, err
                await _check_journal_equals_exchange(sqlite_url, witness, strategy_id)
        finally:
            await witness.aclose()

    asyncio.run(rounds(int(os.environ.get("RUNNER_CRASH_ROUNDS", "20"))))
    assert asyncio.run(_orders(sqlite_url, strategy_id)) > 0, "the runner never traded"


async def _orders(database_url: str, strategy_id: int) -> int:
    async with Database(settings=Settings(database_url=database_url)) as db:
        return len(await db.orders.list(strategy_id=strategy_id, limit=100_000))

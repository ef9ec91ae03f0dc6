"""Benchmark: the order journal against the bare driver writing the same rows; intend and
wait=True latency; restore() beside a large trades table.

    python benchmarks/journal.py [--orders 4000] [--repeats 5] [--part events|intend|restore]
                                 [--postgres-url URL] [--no-postgres] [--quick]

On SQLite (a file in a temporary folder, the library's default settings: WAL,
synchronous=NORMAL) and on PostgreSQL (a database of the run's own on --postgres-url's
server, dropped afterwards):

1. events: --orders orders are intended through the journal (not timed: each intent is a
   transaction of its own), then the timed stream goes at full speed, in waves of 100 orders:
   submitted, acknowledged, a first fill (whole for half of the orders, 0.4 for the rest),
   a second fill of 0.6 for a quarter, cancel_requested and cancelled for the last quarter
   (3.75 events an order). The clock stops when flush() returns. Fills name their order by
   venue order id, as fetch_my_trades reports them.
   The raw side is the bare driver (sqlite3; asyncpg) writing the rows the journal writes for
   that stream, made ahead of the clock as ready driver tuples: the same order_events rows
   (same columns, keys and kinds), one update of each order touched in a batch (its last
   state), the trades rows with their order_id, one position upsert per symbol touched in a
   batch, in transactions of the journal's batch size (1,000 events), with the journal's own
   statement forms (INSERT ... ON CONFLICT DO NOTHING, UPDATE orders ... WHERE id, the
   positions upsert). Values are of the same kinds and sizes, not byte for byte the
   journal's (its local event keys are a uuid per journal and a counter, the raw side's a
   uuid each; its times are taken as it runs). The raw orders and intent events are stored
   before the clock starts, as the journal's intents are. The raw side reads nothing; the
   journal asks the database, once per batch and in its transaction, whether another order
   holds a venue order id the batch's acknowledgements claim. On SQLite the journal commits
   through its worker process (as the library does); the raw side is sqlite3 in this process.
   On PostgreSQL the journal COPies a batch's events and fills (200 and more) in a savepoint,
   falling back to its INSERT ... ON CONFLICT for rows stored already; so a second raw side
   copies events and trades with COPY too (orders and positions by executemany). Journal and
   raw runs alternate, each on a fresh database. The stream and the raw rows, made once, are
   frozen out of the garbage collector's passes (gc.freeze) for the runs.
2. intend: --intents intents per run through intend() (each waits for its commit), then
   submitted(wait=True) and filled(wait=True) on each order; latency of every call.
3. restore: --open orders still open or in doubt (half of the open ones filled in part) and
   --fills fills of other, finished orders of the same strategy (trades with their order_id,
   and their fill events), stored with raw inserts; then restore() in a new Database and a
   new journal each call, --restores calls. On PostgreSQL the tables are ANALYZEd after the
   load, as autovacuum would do.
Prints tables and writes benchmarks/results/journal.json (journal-quick.json with --quick,
journal-PART.json with --part).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from _common import median, percentile, print_table, write_json
from repository import own_postgres_database
from sqlalchemy import event

from quantflow_async import Database
from quantflow_async.live.orders import OrderRequest
from quantflow_async.live.venue import VenueTrade
from quantflow_async.validation import epoch_micros

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
VENUE = "bench"
BATCH = 1000  # the journal's default batch size (Database.journal)
WAVE = 100
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "ADAUSDT")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
ONE = Decimal(1)

EVENT_COLUMNS = (
    "order_id", "strategy_id", "venue", "event_key", "kind", "venue_event_id", "status_after",
    "quantity", "price", "fee", "fee_asset", "reason", "details", "occurred_at", "recorded_at",
)  # fmt: skip
TRADE_COLUMNS = (
    "strategy_id", "backtest_id", "symbol", "side", "type", "quantity", "price", "fee",
    "executed_at", "status", "metadata", "pnl", "external_id", "order_id",
)  # fmt: skip
ORDER_COLUMNS = (
    "strategy_id", "venue", "client_order_id", "venue_order_id", "symbol", "side", "type",
    "quantity", "status", "filled_quantity", "average_price", "created_at", "updated_at",
)  # fmt: skip
POSITION_COLUMNS = (
    "strategy_id", "venue", "symbol", "quantity", "average_price", "realized_pnl", "fees",
    "updated_at",
)  # fmt: skip
JOURNAL_TABLES = ("orders", "order_events", "trades", "positions", "journal_cursors")


def _insert(table: str, columns: Sequence[str], marks: Sequence[str], tail: str = "") -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(marks)}){tail}"


@dataclass(frozen=True)
class Sql:
    """The journal's statement forms, in one driver's parameter style."""

    events: str
    trades: str
    orders: str
    positions: str
    new_orders: str

    @classmethod
    def for_style(cls, mark: Callable[[int], str]) -> Sql:
        def marks(count: int) -> list[str]:
            return [mark(n) for n in range(1, count + 1)]

        changes = ("status", "filled_quantity", "average_price", "venue_order_id", "updated_at")
        assignments = ", ".join(f"{name} = {mark(n)}" for n, name in enumerate(changes, 1))
        upserted = ("quantity", "average_price", "realized_pnl", "fees", "updated_at")
        return cls(
            events=_insert(
                "order_events", EVENT_COLUMNS, marks(len(EVENT_COLUMNS)),
                " ON CONFLICT (event_key) DO NOTHING",
            ),
            trades=_insert(
                "trades", TRADE_COLUMNS, marks(len(TRADE_COLUMNS)),
                " ON CONFLICT (external_id) DO NOTHING",
            ),
            orders=f"UPDATE orders SET {assignments} WHERE id = {mark(len(changes) + 1)}",
            positions=_insert(
                "positions", POSITION_COLUMNS, marks(len(POSITION_COLUMNS)),
                " ON CONFLICT (strategy_id, venue, symbol) DO UPDATE SET "
                + ", ".join(f"{name} = excluded.{name}" for name in upserted),
            ),
            new_orders=_insert("orders", ORDER_COLUMNS, marks(len(ORDER_COLUMNS))),
        )  # fmt: skip


SQLITE_SQL = Sql.for_style(lambda n: "?")
POSTGRES_SQL = Sql.for_style(lambda n: f"${n}")


# -- the stream of events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # submitted, acknowledged, fill, cancel_requested, cancelled
    number: int  # the order's number; its id is number + 1 in a fresh database
    trade: VenueTrade | None = None


def cid(number: int) -> str:
    return f"bench-{number}"


def request(number: int) -> OrderRequest:
    return OrderRequest(
        symbol=SYMBOLS[number % 4],
        side="buy" if number % 2 else "sell",
        quantity=ONE,
        client_order_id=cid(number),
    )


def _fill(number: int, part: int, quantity: str) -> Step:
    trade = VenueTrade(
        trade_id=f"t{number}-{part}",
        venue_order_id=f"v{number}",
        symbol=SYMBOLS[number % 4],
        side="buy" if number % 2 else "sell",
        quantity=Decimal(quantity),
        price=Decimal(f"{42000 + number % 1000}.{part}5"),
        fee=Decimal("0.0213"),
        fee_asset="USDT",
        executed_at=T0 + timedelta(milliseconds=number * 10 + part),
    )
    return Step("fill", number, trade)


def event_stream(orders: int) -> list[Step]:
    """Waves of WAVE orders in flight: each wave's submits, then acks, fills and cancels."""
    steps: list[Step] = []
    for first in range(0, orders, WAVE):
        wave = range(first, min(first + WAVE, orders))
        steps += [Step("submitted", n) for n in wave]
        steps += [Step("acknowledged", n) for n in wave]
        steps += [_fill(n, 1, "1" if n % 4 >= 2 else "0.4") for n in wave]
        steps += [_fill(n, 2, "0.6") for n in wave if n % 4 == 1]
        steps += [Step("cancel_requested", n) for n in wave if n % 4 == 0]
        steps += [Step("cancelled", n) for n in wave if n % 4 == 0]
    return steps


async def play(journal: Any, step: Step) -> None:
    name = cid(step.number)
    if step.kind == "fill":
        assert step.trade is not None
        await journal.filled(step.trade)
    elif step.kind == "acknowledged":
        await journal.acknowledged(name, f"v{step.number}")
    else:
        await getattr(journal, step.kind)(name)


# -- the same rows, made ahead for the bare driver -------------------------------------------


@dataclass(slots=True)
class RawRows:
    """Rows as dictionaries of Python values, batch by batch, as the journal writes them."""

    new_orders: list[dict[str, Any]] = field(default_factory=list)
    intents: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, list[dict[str, Any]]]] = field(default_factory=list)


def _event(order_id: int, kind: str, status: str, **values: Any) -> dict[str, Any]:
    venue_event_id = values.get("venue_event_id")
    key = f"{VENUE}:{venue_event_id}" if venue_event_id else f"{VENUE}:local:{uuid.uuid4().hex}"
    row = dict.fromkeys(EVENT_COLUMNS)
    row |= {"order_id": order_id, "strategy_id": 1, "venue": VENUE, "event_key": key}
    row |= {"kind": kind, "status_after": status, "recorded_at": datetime.now(UTC), **values}
    return row


def raw_rows(orders: int, steps: list[Step]) -> RawRows:
    """What the journal writes for `steps`: orders 1..orders exist (intended) before them."""
    rows = RawRows()
    now = datetime.now(UTC)
    state: dict[int, dict[str, Any]] = {}
    for number in range(orders):
        req = request(number)
        order = {
            "strategy_id": 1, "venue": VENUE, "client_order_id": cid(number),
            "venue_order_id": None, "symbol": req.symbol, "side": req.side, "type": req.type,
            "quantity": req.quantity, "status": "intended", "filled_quantity": Decimal(0),
            "average_price": None, "created_at": now, "updated_at": now,
        }  # fmt: skip
        rows.new_orders.append(order)
        rows.intents.append(_event(number + 1, "intent", "intended", quantity=ONE))
        state[number] = dict(order, notional=Decimal(0))
    held = {symbol: [Decimal(0), Decimal(0), Decimal(0)] for symbol in SYMBOLS}
    for start in range(0, len(steps), BATCH):
        batch: dict[str, Any] = {"events": [], "orders": {}, "trades": [], "positions": {}}
        for step in steps[start : start + BATCH]:
            order, order_id = state[step.number], step.number + 1
            extra: dict[str, Any] = {}
            if step.kind == "acknowledged":
                order["venue_order_id"], order["status"] = f"v{step.number}", "open"
            elif step.kind == "submitted":
                order["status"] = "submitted"
            elif step.kind == "cancelled":
                order["status"] = "cancelled"
            elif step.kind == "fill":
                trade = step.trade
                assert trade is not None
                order["filled_quantity"] += trade.quantity
                order["notional"] += trade.quantity * trade.price
                order["average_price"] = order["notional"] / order["filled_quantity"]
                done = order["filled_quantity"] == order["quantity"]
                order["status"] = "filled" if done else "partially_filled"
                extra = {
                    "venue_event_id": trade.trade_id, "quantity": trade.quantity,
                    "price": trade.price, "fee": trade.fee, "fee_asset": trade.fee_asset,
                    "occurred_at": trade.executed_at,
                }  # fmt: skip
                position = held[trade.symbol]
                sign = 1 if trade.side == "buy" else -1
                position[0] += sign * trade.quantity
                position[2] += trade.fee
                batch["trades"].append(
                    {
                        "strategy_id": 1, "backtest_id": None, "symbol": trade.symbol,
                        "side": trade.side, "type": "market", "quantity": trade.quantity,
                        "price": trade.price, "fee": trade.fee,
                        "executed_at": trade.executed_at,
                        "status": "filled" if done else "partially_filled",
                        "metadata": {
                            "client_order_id": cid(step.number),
                            "venue_order_id": trade.venue_order_id, "fee_asset": "USDT",
                        },
                        "pnl": Decimal("0.125"), "external_id": f"{VENUE}:{trade.trade_id}",
                        "order_id": order_id,
                    }
                )  # fmt: skip
                batch["positions"][trade.symbol] = {
                    "strategy_id": 1, "venue": VENUE, "symbol": trade.symbol,
                    "quantity": position[0], "average_price": trade.price,
                    "realized_pnl": position[1], "fees": position[2],
                    "updated_at": datetime.now(UTC),
                }  # fmt: skip
            order["updated_at"] = datetime.now(UTC)
            batch["events"].append(_event(order_id, step.kind, order["status"], **extra))
            batch["orders"][order_id] = (
                order["status"], order["filled_quantity"], order["average_price"],
                order["venue_order_id"], order["updated_at"], order_id,
            )  # fmt: skip
        rows.batches.append(
            {
                "events": batch["events"],
                "orders": list(batch["orders"].values()),
                "trades": batch["trades"],
                "positions": list(batch["positions"].values()),
            }
        )
    return rows


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return epoch_micros(value)
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _postgres_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict) else value


def tuples(
    rows: Sequence[Any], columns: Sequence[str] | None, convert: Callable[[Any], Any]
) -> list[tuple[Any, ...]]:
    """Driver tuples: dictionaries by `columns`, or tuples as they are, values converted."""
    if columns is None:
        return [tuple(convert(value) for value in row) for row in rows]
    return [tuple(convert(row[name]) for name in columns) for row in rows]


@dataclass(frozen=True)
class DriverBatch:
    events: list[tuple[Any, ...]]
    orders: list[tuple[Any, ...]]
    trades: list[tuple[Any, ...]]
    positions: list[tuple[Any, ...]]


def driver_batches(rows: RawRows, convert: Callable[[Any], Any]) -> list[DriverBatch]:
    return [
        DriverBatch(
            tuples(batch["events"], EVENT_COLUMNS, convert),
            tuples(batch["orders"], None, convert),
            tuples(batch["trades"], TRADE_COLUMNS, convert),
            tuples(batch["positions"], POSITION_COLUMNS, convert),
        )
        for batch in rows.batches
    ]


# -- backends ---------------------------------------------------------------------------------


class Backend:
    """A place to make fresh journal databases: one migrated once, then emptied or copied."""

    name: str
    url: str

    async def prepare(self) -> None:
        await migrated(self.url)

    async def fresh(self) -> str:
        raise NotImplementedError

    async def raw_events(self, rows: RawRows, *, copy: bool = False) -> float:
        raise NotImplementedError

    async def bulk(self, table: str, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError


async def migrated(url: str) -> None:
    async with Database(url) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="bench")
    assert strategy.id == 1


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.template = folder / "template.sqlite3"
        self.path = folder / "run.sqlite3"
        self.url = f"sqlite+aiosqlite:///{self.path}"

    async def prepare(self) -> None:
        await migrated(f"sqlite+aiosqlite:///{self.template}")

    async def fresh(self) -> str:
        self._copy_template()
        return self.url

    def _copy_template(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.template, self.path)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            connection.execute(f"PRAGMA {pragma}")
        return connection

    async def raw_events(self, rows: RawRows, *, copy: bool = False) -> float:
        return self._raw_events(rows)

    def _raw_events(self, rows: RawRows) -> float:
        sql, convert = SQLITE_SQL, _sqlite_value
        batches = driver_batches(rows, convert)
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(sql.new_orders, tuples(rows.new_orders, ORDER_COLUMNS, convert))
            connection.executemany(sql.events, tuples(rows.intents, EVENT_COLUMNS, convert))
            connection.execute("COMMIT")
            started = time.perf_counter()
            for batch in batches:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(sql.events, batch.events)
                connection.executemany(sql.orders, batch.orders)
                connection.executemany(sql.trades, batch.trades)
                connection.executemany(sql.positions, batch.positions)
                connection.execute("COMMIT")
            return time.perf_counter() - started
        finally:
            connection.close()

    async def bulk(self, table: str, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
        connection = self._connect()
        try:
            statement = _insert(table, columns, ["?"] * len(columns))
            for start in range(0, len(rows), 50_000):
                chunk = tuples(rows[start : start + 50_000], columns, _sqlite_value)
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(statement, chunk)
                connection.execute("COMMIT")
        finally:
            connection.close()


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self.dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def fresh(self) -> str:
        connection = await asyncpg.connect(self.dsn)
        try:
            tables = ", ".join(JOURNAL_TABLES)
            await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY")
        finally:
            await connection.close()
        return self.url

    async def raw_events(self, rows: RawRows, *, copy: bool = False) -> float:
        sql, convert = POSTGRES_SQL, _postgres_value
        batches = driver_batches(rows, convert)
        connection = await asyncpg.connect(self.dsn)
        try:
            async with connection.transaction():
                await connection.executemany(
                    sql.new_orders, tuples(rows.new_orders, ORDER_COLUMNS, convert)
                )
                await connection.executemany(
                    sql.events, tuples(rows.intents, EVENT_COLUMNS, convert)
                )
            started = time.perf_counter()
            for batch in batches:
                async with connection.transaction():
                    if copy:
                        await connection.copy_records_to_table(
                            "order_events", records=batch.events, columns=EVENT_COLUMNS
                        )
                    else:
                        await connection.executemany(sql.events, batch.events)
                    await connection.executemany(sql.orders, batch.orders)
                    if copy:
                        await connection.copy_records_to_table(
                            "trades", records=batch.trades, columns=TRADE_COLUMNS
                        )
                    else:
                        await connection.executemany(sql.trades, batch.trades)
                    await connection.executemany(sql.positions, batch.positions)
            return time.perf_counter() - started
        finally:
            await connection.close()

    async def bulk(self, table: str, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            for start in range(0, len(rows), 50_000):
                chunk = tuples(rows[start : start + 50_000], columns, _postgres_value)
                async with connection.transaction():
                    await connection.copy_records_to_table(table, records=chunk, columns=columns)
        finally:
            await connection.close()

    async def analyze(self) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            await connection.execute("ANALYZE")
        finally:
            await connection.close()


# -- 1. events ----------------------------------------------------------------------------------


async def journal_events(url: str, orders: int, steps: list[Step]) -> tuple[float, float, int]:
    """Seconds from the first event to flush() returning, seconds until the last event was
    recorded (flush() called), and the transactions committed."""
    commits = 0

    def count(connection: Any) -> None:
        nonlocal commits
        commits += 1

    async with Database(url) as db:
        async with db.journal(strategy_id=1, venue=VENUE) as journal:
            for number in range(orders):
                await journal.intend(request(number))
            event.listen(db.engine.sync_engine, "commit", count)
            started = time.perf_counter()
            for step in steps:
                await play(journal, step)
            recorded = time.perf_counter() - started
            await journal.flush()
            elapsed = time.perf_counter() - started
            event.remove(db.engine.sync_engine, "commit", count)
            assert journal.stats().events_written == orders + len(steps), journal.stats()
    return elapsed, recorded, commits


async def measure_events(backend: Backend, args: argparse.Namespace) -> dict[str, Any]:
    steps = event_stream(args.orders)
    rows = raw_rows(args.orders, steps)
    # The stream and the raw side's rows, made ahead, stay alive through every run: kept out
    # of the collector's passes, so that neither side pays for scanning the other's data.
    gc.collect()
    gc.freeze()
    commits: list[int] = []
    recorded: list[float] = []

    async def journal() -> float:
        elapsed, until_flush, committed = await journal_events(
            await backend.fresh(), args.orders, steps
        )
        recorded.append(until_flush)
        commits.append(committed)
        return elapsed

    async def raw() -> float:
        await backend.fresh()
        return await backend.raw_events(rows)

    async def raw_copy() -> float:
        await backend.fresh()
        return await backend.raw_events(rows, copy=True)

    paths: dict[str, Callable[[], Awaitable[float]]] = {"journal": journal, "raw": raw}
    if isinstance(backend, PostgresBackend):
        paths["raw_copy"] = raw_copy
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for attempt in range(args.repeats):
        for name, path in paths.items():
            seconds[name].append(await path())
            print(f"  {backend.name} events run {attempt + 1}: {name} "
                  f"{len(steps) / seconds[name][-1]:,.0f} events/s", flush=True)  # fmt: skip
    gc.unfreeze()
    rates = {name: [len(steps) / s for s in values] for name, values in seconds.items()}
    ratios = [j / r for j, r in zip(rates["journal"], rates["raw"], strict=True)]
    return {
        "orders": args.orders,
        "events": len(steps),
        "batch_size": BATCH,
        "raw_transactions": len(rows.batches),
        "journal_transactions": commits,
        "journal_seconds_until_flush_called": recorded,
        "seconds": seconds,
        "events_per_second": rates,
        "median_events_per_second": {name: median(v) for name, v in rates.items()},
        "journal_vs_raw_per_run": ratios,
        "journal_vs_raw": median(rates["journal"]) / median(rates["raw"]),
    }


# -- 2. intend and wait=True latency ------------------------------------------------------------


async def latencies(url: str, intents: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"intend": [], "submitted_wait": [], "fill_wait": []}
    clock = time.perf_counter
    async with Database(url) as db:
        async with db.journal(strategy_id=1, venue=VENUE) as journal:
            for number in range(intents):
                started = clock()
                await journal.intend(request(number))
                found["intend"].append(clock() - started)
            for number in range(intents):
                started = clock()
                await journal.submitted(cid(number), wait=True)
                found["submitted_wait"].append(clock() - started)
                await journal.acknowledged(cid(number), f"v{number}", wait=True)
                fill = _fill(number, 1, "1").trade
                assert fill is not None
                started = clock()
                await journal.filled(fill, wait=True)
                found["fill_wait"].append(clock() - started)
    return found


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": median(values), "max": max(values)}


async def measure_intend(backend: Backend, args: argparse.Namespace) -> dict[str, Any]:
    runs: list[dict[str, list[float]]] = []
    for attempt in range(args.repeats):
        runs.append(await latencies(await backend.fresh(), args.intents))
        p99 = percentile(runs[-1]["intend"], 99) * 1000
        print(f"  {backend.name} intend run {attempt + 1}: p99 {p99:.2f} ms", flush=True)
    result: dict[str, Any] = {"intents_per_run": args.intents, "runs": args.repeats}
    for name in runs[0]:
        pooled = [value for run in runs for value in run[name]]
        result[name] = {
            "p50_ms": percentile(pooled, 50) * 1000,
            "p99_ms": percentile(pooled, 99) * 1000,
            "max_ms": max(pooled) * 1000,
            "p99_ms_per_run": [percentile(run[name], 99) * 1000 for run in runs],
            "p50_ms_per_run": [percentile(run[name], 50) * 1000 for run in runs],
        }
    return result


# -- 3. restore ---------------------------------------------------------------------------------


def restore_rows(open_orders: int, fills: int) -> dict[str, list[dict[str, Any]]]:
    """Finished orders with 10 fills each (trades and fill events), then the open ones."""
    now = datetime.now(UTC)
    finished = fills // 10
    orders: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    trades: list[dict[str, Any]] = []
    statuses = ("open", "partially_filled", "submitted", "unknown", "intended")
    price = Decimal("42000.5")
    for number in range(finished + open_orders):
        order_id = number + 1
        done = number < finished
        status = "filled" if done else statuses[number % 5]
        part = status == "partially_filled"
        filled = ONE if done else Decimal("0.4") if part else Decimal(0)
        orders.append(
            {
                "strategy_id": 1, "venue": VENUE, "client_order_id": cid(number),
                "venue_order_id": None if status in ("intended", "submitted") else f"v{number}",
                "symbol": SYMBOLS[number % 4], "side": "buy" if number % 2 else "sell",
                "type": "market", "quantity": ONE, "status": status, "filled_quantity": filled,
                "average_price": price if filled else None, "created_at": now, "updated_at": now,
            }
        )  # fmt: skip
        events.append(_event(order_id, "intent", "intended", quantity=ONE))
        parts = 10 if done else 1 if part else 0
        for n in range(parts):
            quantity = Decimal("0.1") if done else Decimal("0.4")
            trade_id = f"t{number}-{n}"
            at = T0 + timedelta(milliseconds=order_id * 10 + n)
            events.append(
                _event(
                    order_id, "fill", "filled" if done and n == 9 else "partially_filled",
                    venue_event_id=trade_id, quantity=quantity, price=price,
                    fee=Decimal("0.0213"), fee_asset="USDT", occurred_at=at,
                )
            )  # fmt: skip
            trades.append(
                {
                    "strategy_id": 1, "backtest_id": None, "symbol": SYMBOLS[number % 4],
                    "side": "buy" if number % 2 else "sell", "type": "market",
                    "quantity": quantity, "price": price, "fee": Decimal("0.0213"),
                    "executed_at": at, "status": "partially_filled", "metadata": None,
                    "pnl": Decimal(0), "external_id": f"{VENUE}:{trade_id}",
                    "order_id": order_id,
                }
            )  # fmt: skip
    positions = [
        {
            "strategy_id": 1, "venue": VENUE, "symbol": symbol, "quantity": Decimal("12.5"),
            "average_price": price, "realized_pnl": Decimal("1.25"), "fees": Decimal("3.5"),
            "updated_at": now,
        }
        for symbol in SYMBOLS
    ]  # fmt: skip
    return {"orders": orders, "events": events, "trades": trades, "positions": positions}


async def load_restore_data(backend: Backend, args: argparse.Namespace) -> dict[str, int]:
    await backend.fresh()
    made = restore_rows(args.open, args.fills)
    started = time.perf_counter()
    await backend.bulk("orders", ORDER_COLUMNS, made["orders"])
    await backend.bulk("order_events", EVENT_COLUMNS, made["events"])
    await backend.bulk("trades", TRADE_COLUMNS, made["trades"])
    await backend.bulk("positions", POSITION_COLUMNS, made["positions"])
    if isinstance(backend, PostgresBackend):
        await backend.analyze()
    print(f"  {backend.name} restore set-up stored {sum(map(len, made.values())):,} rows "
          f"in {time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    return {name: len(rows) for name, rows in made.items()}


async def one_restore(url: str, expected: int) -> float:
    async with Database(url) as db:
        async with db.journal(strategy_id=1, venue=VENUE) as journal:
            started = time.perf_counter()
            restored = await journal.restore()
            elapsed = time.perf_counter() - started
    assert len(restored.open_orders) + len(restored.in_doubt) == expected
    assert len(restored.positions) == len(SYMBOLS)
    return elapsed


async def measure_restore(backend: Backend, args: argparse.Namespace) -> dict[str, Any]:
    stored = await load_restore_data(backend, args)
    seconds = [await one_restore(backend.url, args.open) for _ in range(args.restores)]
    print(f"  {backend.name} restore: median {median(seconds) * 1000:.0f} ms", flush=True)
    return {"open_orders": args.open, "fills": args.fills, "stored": stored, "seconds": seconds}


# -- the report ---------------------------------------------------------------------------------


def _range(values: Sequence[float], scale: float = 1, digits: int = 0) -> str:
    return f"{min(values) * scale:,.{digits}f}..{max(values) * scale:,.{digits}f}"


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    if any("events" in r for r in results.values()):
        rows = []
        for backend, r in results.items():
            if "events" not in r:
                continue
            e = r["events"]
            for name, rates in e["events_per_second"].items():
                ratio = median(rates) / median(e["events_per_second"]["raw"])
                rows.append((backend, name, f"{median(rates):,.0f}", _range(rates), f"{ratio:.2f}"))
            per_run = _range(e["journal_vs_raw_per_run"], 1, 2)
            rows.append((backend, "journal / raw, per run", "", per_run, "goal >= 0.80"))
        print_table(
            f"Journaled events/s, {args.orders:,} orders, median of {args.repeats}",
            ["backend", "path", "events/s", "min..max", "vs raw"],
            rows,
        )
    if any("intend" in r for r in results.values()):
        rows = []
        for backend, r in results.items():
            if "intend" not in r:
                continue
            for name, figures in r["intend"].items():
                if not isinstance(figures, dict):
                    continue
                rows.append(
                    (
                        backend, name, f"{figures['p50_ms']:.2f}", f"{figures['p99_ms']:.2f}",
                        _range(figures["p99_ms_per_run"], 1, 2), f"{figures['max_ms']:.1f}",
                    )
                )  # fmt: skip
        print_table(
            f"Latency, ms, {args.intents:,} orders x {args.repeats} runs (goal: intend p99 <= 20"
            " ms on SQLite)",
            ["backend", "call", "p50", "p99", "p99 per run", "max"],
            rows,
        )
    if any("restore" in r for r in results.values()):
        rows = []
        for backend, r in results.items():
            if "restore" not in r:
                continue
            s = r["restore"]["seconds"]
            rows.append((backend, f"{median(s) * 1000:.0f}", _range(s, 1000), "goal <= 1000"))
        print_table(
            f"restore(), {args.open:,} open orders beside {args.fills:,} fills, "
            f"ms, median of {args.restores}",
            ["backend", "ms", "min..max", ""],
            rows,
        )


PARTS = {"events": measure_events, "intend": measure_intend, "restore": measure_restore}


async def benchmark(args: argparse.Namespace, backends: list[Backend]) -> None:
    load_start = os.getloadavg()
    results: dict[str, dict[str, Any]] = {}
    for backend in backends:
        await backend.prepare()
        results[backend.name] = {}
        for part, measure in PARTS.items():
            if args.part in (None, part):
                results[backend.name][part] = await measure(backend, args)
    load_end = os.getloadavg()
    report(args, results)
    print(f"\nload average (1, 5, 15 min): at start {load_start}, at the end {load_end}")
    name = "journal-quick" if args.quick else f"journal-{args.part}" if args.part else "journal"
    write_json(
        name,
        {
            "load_average_start": load_start,
            "load_average_end": load_end,
            "arguments": vars(args),
            "results": results,
        },
    )


@contextmanager
def postgres(args: argparse.Namespace) -> Iterator[str | None]:
    if args.no_postgres:
        yield None
        return
    with own_postgres_database(args.postgres_url) as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=4000)
    parser.add_argument("--intents", type=int, default=1000)
    parser.add_argument("--open", type=int, default=10_000)
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--restores", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--part", choices=sorted(PARTS))
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    args = parser.parse_args()
    if args.quick:
        args.orders, args.intents, args.repeats = 400, 100, 2
        args.open, args.fills, args.restores = 200, 10_000, 2
    with tempfile.TemporaryDirectory() as folder, postgres(args) as postgres_url:
        backends: list[Backend] = [SqliteBackend(Path(folder))]
        if postgres_url is not None:
            backends.append(PostgresBackend(postgres_url))
        asyncio.run(benchmark(args, backends))


if __name__ == "__main__":
    main()

"""The paper exchange's own SQLite file: replay start, balances, orders and trades.

Every change is one transaction in WAL mode, so a SIGKILL loses nothing the exchange answered.
sqlite3 errors are translated here into StorageError, naming the file.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from quantflow_async.errors import InvalidValue, StorageError
from quantflow_async.live.paper.matching import Side
from quantflow_async.live.paper.rows import (
    OPEN_STATUSES,
    SCHEMA,
    BarChange,
    Execution,
    NewOrderRow,
    OrderRow,
    TradeRow,
    optional_text,
    order_of,
    trade_of,
)

UID_RANGE: Final = 10**12
"""Account uids are drawn from 1..10**12 - 1: apart per state file, exact as a JSON number."""


class State:
    """The exchange's SQLite file; `open` creates it on first use with the replay's start."""

    def __init__(self, connection: sqlite3.Connection, path: Path, base: str, quote: str) -> None:
        self._db = connection
        self.path = path
        self.base = base
        self.quote = quote

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        symbol: str,
        base: str,
        quote: str,
        bar_ns: int,
        cash: Decimal,
        now_ns: int | None,
    ) -> State:
        """The state at `path`, created with `cash` of `quote` and t0 = `now_ns` if new (None:
        the replay starts later, `start_replay`).

        A file made for another symbol or another bar length is refused: its replay position
        would mean something else.
        """
        try:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageError(f"state {path}: cannot be opened: {exc}") from exc
        state = cls(connection, path, base, quote)
        try:
            state._prepare(symbol=symbol, bar_ns=bar_ns, cash=cash, now_ns=now_ns)
        except BaseException:
            connection.close()
            raise
        return state

    def _prepare(self, *, symbol: str, bar_ns: int, cash: Decimal, now_ns: int | None) -> None:
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a process kill
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)  # idempotent; executescript commits by itself
            with self._transaction() as db:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
                if not meta:
                    initial = {
                        "symbol": symbol,
                        "bar_ns": str(bar_ns),
                        "t0_ns": "" if now_ns is None else str(now_ns),
                        "processed": "0",
                        "uid": _new_uid(),
                    }
                    db.executemany("INSERT INTO meta VALUES (?, ?)", initial.items())
                    db.executemany(
                        "INSERT INTO balances VALUES (?, ?)",
                        [(self.quote, str(cash)), (self.base, "0")],
                    )
                    return
        except sqlite3.Error as exc:
            raise StorageError(f"state {self.path}: {exc}") from exc
        _check_market(self.path, meta, symbol=symbol, bar_ns=bar_ns)
        if "uid" not in meta:  # a file made before accounts had ids gets one now
            try:
                with self._transaction() as db:
                    db.execute("INSERT INTO meta VALUES ('uid', ?)", (_new_uid(),))
            except sqlite3.Error as exc:
                raise StorageError(f"state {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- reads -------------------------------------------------------------------------------

    @property
    def t0_ns(self) -> int | None:
        """When bar 0 began to form; None while the replay waits for its first request."""
        value = self._meta("t0_ns")
        return int(value) if value else None

    def start_replay(self, now_ns: int) -> int:
        """Start a replay that waits (t0 = `now_ns`), once; the replay's t0."""
        try:
            with self._transaction() as db:
                db.execute(
                    "UPDATE meta SET value = ? WHERE key = 't0_ns' AND value = ''", (str(now_ns),)
                )
        except sqlite3.Error as exc:
            raise StorageError(f"state {self.path}: {exc}") from exc
        started = self.t0_ns
        if started is None:  # pragma: no cover - the update above sets it
            raise StorageError(f"state {self.path}: the replay did not start")
        return started

    @property
    def uid(self) -> int:
        """The account's id, made once with the file: another file is another account."""
        return int(self._meta("uid"))

    @property
    def processed(self) -> int:
        """How many bars have been evaluated against the resting orders."""
        return int(self._meta("processed"))

    def _meta(self, key: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    def balances(self) -> dict[str, Decimal]:
        rows = self._db.execute("SELECT asset, amount FROM balances ORDER BY asset").fetchall()
        return {asset: Decimal(amount) for asset, amount in rows}

    def order(
        self, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> OrderRow | None:
        if order_id is not None:
            row = self._db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
            if row is not None and client_order_id is not None and row[1] != client_order_id:
                return None
        else:
            row = self._db.execute(
                "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
            ).fetchone()
        return order_of(row) if row is not None else None

    def _stored(self, order_id: int) -> OrderRow:
        order = self.order(order_id=order_id)
        if order is None:  # only if another program edits the file under us
            raise StorageError(f"state {self.path}: order {order_id} vanished")
        return order

    def open_orders(self) -> list[OrderRow]:
        rows = self._db.execute(
            "SELECT * FROM orders WHERE status IN (?, ?) ORDER BY id", OPEN_STATUSES
        ).fetchall()
        return [order_of(row) for row in rows]

    def orders(
        self,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
        latest: bool = False,
    ) -> list[OrderRow]:
        """Orders oldest first: from `from_id` or `start_ms`, or the `latest` `limit` of them."""
        where, args = _range("id", from_id, start_ms, end_ms)
        sql = _select("orders", where, latest=latest)
        rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [order_of(row) for row in rows]

    def trades(
        self,
        *,
        order_id: int | None = None,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
        latest: bool = False,
    ) -> list[TradeRow]:
        where, args = _range("id", from_id, start_ms, end_ms)
        if order_id is not None:
            where += (" AND" if where else "WHERE") + " order_id = ?"
            args.append(order_id)
        if latest:
            sql = (
                f"SELECT * FROM (SELECT * FROM trades {where} ORDER BY id DESC LIMIT ?) ORDER BY id"  # noqa: S608
            )
        else:
            sql = f"SELECT * FROM trades {where} ORDER BY id LIMIT ?"  # noqa: S608
        rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [trade_of(row) for row in rows]

    # -- changes, one transaction each ------------------------------------------------------

    def add_order(
        self, order: NewOrderRow, execution: Execution | None, *, status: str = "NEW"
    ) -> tuple[OrderRow, list[TradeRow]]:
        """Store a new order, filled at once by `execution` when there is one."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO orders (client_order_id, side, type, time_in_force, quantity, price,"
                " stop_price, status, executed_qty, cum_quote, triggered, time_ms, update_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, '0', '0', 0, ?, ?)",
                (
                    order.client_order_id,
                    order.side,
                    order.type,
                    order.time_in_force,
                    str(order.quantity),
                    optional_text(order.price),
                    optional_text(order.stop_price),
                    status,
                    order.time_ms,
                    order.time_ms,
                ),
            )
            order_id = int(cursor.lastrowid or 0)
            trades = [self._execute(db, order_id, order.side, execution)] if execution else []
        return self._stored(order_id), trades

    def cancel(self, order_id: int, time_ms: int) -> OrderRow:
        return self._set_status(order_id, "CANCELED", time_ms)

    def expire(self, order_id: int, time_ms: int) -> OrderRow:
        return self._set_status(order_id, "EXPIRED", time_ms)

    def _set_status(self, order_id: int, status: str, time_ms: int) -> OrderRow:
        with self._transaction() as db:
            db.execute(
                "UPDATE orders SET status = ?, update_ms = ? WHERE id = ?",
                (status, time_ms, order_id),
            )
        return self._stored(order_id)

    def evaluate_bar(self, index: int, time_ms: int, changes: Iterable[BarChange]) -> None:
        """Record what bar `index` (open time `time_ms`) did, and that it was evaluated, in one
        transaction; trade ids follow the order of `changes`."""
        with self._transaction() as db:
            for change in changes:
                if change.triggered:
                    db.execute("UPDATE orders SET triggered = 1 WHERE id = ?", (change.order_id,))
                if change.execution is not None:
                    self._execute(db, change.order_id, change.side, change.execution)
                elif change.status is not None:
                    db.execute(
                        "UPDATE orders SET status = ?, update_ms = ? WHERE id = ?",
                        (change.status, time_ms, change.order_id),
                    )
            db.execute("UPDATE meta SET value = ? WHERE key = 'processed'", (str(index + 1),))

    def _execute(
        self, db: sqlite3.Connection, order_id: int, side: Side, execution: Execution
    ) -> TradeRow:
        """Record one trade of order `order_id`, add it to the order's totals (FILLED once they
        reach its quantity, else PARTIALLY_FILLED) and move the balances."""
        quote_qty = execution.quantity * execution.price
        quantity, executed, cum_quote = db.execute(
            "SELECT quantity, executed_qty, cum_quote FROM orders WHERE id = ?", (order_id,)
        ).fetchone()
        executed = Decimal(executed) + execution.quantity
        status = "FILLED" if executed >= Decimal(quantity) else "PARTIALLY_FILLED"
        cursor = db.execute(
            "INSERT INTO trades (order_id, side, price, qty, quote_qty, commission, time_ms,"
            " is_maker) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                order_id,
                side,
                str(execution.price),
                str(execution.quantity),
                str(quote_qty),
                str(execution.fee),
                execution.time_ms,
                int(execution.is_maker),
            ),
        )
        db.execute(
            "UPDATE orders SET status = ?, executed_qty = ?, cum_quote = ?, update_ms = ?"
            " WHERE id = ?",
            (
                status,
                str(executed),
                str(Decimal(cum_quote) + quote_qty),
                execution.time_ms,
                order_id,
            ),
        )
        db.executemany(
            "UPDATE balances SET amount = ? WHERE asset = ?",
            [(str(execution.quote), self.quote), (str(execution.base), self.base)],
        )
        return TradeRow(
            id=int(cursor.lastrowid or 0),
            order_id=order_id,
            side=side,
            price=execution.price,
            qty=execution.quantity,
            quote_qty=quote_qty,
            commission=execution.fee,
            time_ms=execution.time_ms,
            is_maker=execution.is_maker,
        )


def _select(table: str, where: str, *, latest: bool) -> str:
    """A query of `table` oldest first; `latest` keeps the newest LIMIT rows instead."""
    if latest:
        return f"SELECT * FROM (SELECT * FROM {table} {where} ORDER BY id DESC LIMIT ?) ORDER BY id"  # noqa: S608 - our own names
    return f"SELECT * FROM {table} {where} ORDER BY id LIMIT ?"  # noqa: S608 - our own names


def _range(
    column: str, from_id: int | None, start_ms: int | None, end_ms: int | None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if from_id is not None:
        clauses.append(f"{column} >= ?")
        args.append(from_id)
    if start_ms is not None:
        clauses.append("time_ms >= ?")
        args.append(start_ms)
    if end_ms is not None:
        clauses.append("time_ms <= ?")
        args.append(end_ms)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


def _new_uid() -> str:
    return str(1 + secrets.randbelow(UID_RANGE - 1))


def _check_market(path: Path, meta: dict[str, str], *, symbol: str, bar_ns: int) -> None:
    """InvalidValue unless the state file replays `symbol` in bars of `bar_ns`."""
    if meta.get("symbol") != symbol:
        raise InvalidValue("state", f"{path} holds symbol {meta.get('symbol')!r}, not {symbol!r}")
    if meta.get("bar_ns") != str(bar_ns):
        seconds = int(meta.get("bar_ns", "0")) / 1e9
        raise InvalidValue(
            "state", f"{path} replays {seconds} s bars; start it with --bar-seconds {seconds}"
        )

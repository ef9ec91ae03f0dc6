"""Every error QuantFlow Async raises on purpose, in one hierarchy.

    QuantFlowError
    ├── DatabaseNotOpen                       a Database used before open() or after aclose()
    ├── InvalidValue (also a ValueError)      a bad argument, setting or Fill field; `.field`
    │                                         names it
    ├── NotFound (also a LookupError)         a strategy, backtest or trade id that does not exist
    ├── Conflict                              a unique name, or a delete that would orphan rows
    ├── InvalidTransition                     a backtest status change the lifecycle forbids
    ├── StorageError                          the database failed, not because of the input
    │   └── StorageUnavailable                the database is gone for good (disk full, read-only,
    │                                         missing directory, server down past the retry budget)
    ├── MigrationError                        the schema could not be brought to the head revision
    ├── MissingExtra (a ModuleNotFoundError)  a package of an optional extra is not installed;
    │                                         the message names the extra to install
    ├── ScriptRerun (also a RuntimeError)     a sweep's worker process ran the script's
    │                                         top-level code again: it needs
    │                                         `if __name__ == "__main__":`
    ├── BacktestError                         raised by the backtest engine, runner and sweep
    │   ├── BarsError (also a ValueError)     a bars file or array that cannot be simulated;
    │   │                                     `.path`, `.row`, `.column`
    │   ├── StrategyConfigError (a ValueError) an unknown strategy, parameter or setting; `.key`
    │   └── BacktestFailed                    the strategy raised; the backtest is stored as
    │                                         failed (`.backtest_id`, the error as `__cause__`)
    ├── WriterError                           raised by TradeWriter
    │   ├── QueueFull                         submit_nowait() on a full queue
    │   ├── WriterNotRunning                  used before `async with`, or started twice
    │   ├── WriterClosed                      submit() after the writer was closed
    │   ├── FillRejected                      a fill the database refused (constraint, foreign key)
    │   └── WriterFailed                      the writer stopped; `.unwritten` holds every fill
    │                                         accepted but not committed, handed back
    └── LiveError                             raised by the order journal, venues and live runner
        ├── OrderEventRefused                 an order event the state machine forbids; kept in
        │                                     the journal as refused; `.client_order_id`
        └── VenueError                        a venue call that could not be settled; `.venue`
            ├── VenueUnavailable              connection faults past the retry budget
            ├── VenueRejected                 the venue refused the request; `.code`
            └── MalformedVenueAnswer          an answer that cannot be read; `.field`

Driver exceptions (sqlite3, asyncpg, SQLAlchemy) are translated at the repository and
writer boundary with the original chained as `__cause__`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quantflow_async.records import Fill


class QuantFlowError(Exception):
    """Base class of every error the library raises on purpose."""


class MissingExtra(QuantFlowError, ModuleNotFoundError):
    """A package of an optional extra is not installed; the message says how to install it.

    A ModuleNotFoundError, so code that already handles a missing import handles this too.
    """


class DatabaseNotOpen(QuantFlowError):
    """A Database used before `open()` (or `async with`) or after `aclose()`."""


class InvalidValue(QuantFlowError, ValueError):
    """A value that can never be stored; `field` names the argument or Fill field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFound(QuantFlowError, LookupError):
    """A row that does not exist; `entity` is 'strategy', 'backtest' or 'trade'."""

    def __init__(self, entity: str, key: object, *, field: str = "id") -> None:
        super().__init__(f"{entity} with {field}={key!r} does not exist")
        self.entity = entity
        self.key = key


class Conflict(QuantFlowError):
    """The change would break a uniqueness or referential rule."""


class InvalidTransition(QuantFlowError):
    """A backtest status change that the lifecycle does not allow."""

    def __init__(self, backtest_id: int, current: str, requested: str) -> None:
        super().__init__(
            f"backtest {backtest_id} cannot go from status {current!r} to {requested!r}"
        )
        self.backtest_id = backtest_id
        self.current = current
        self.requested = requested


class StorageError(QuantFlowError):
    """The database failed for a reason other than the caller's input."""


class StorageUnavailable(StorageError):
    """The database cannot be written at all: full, read-only, missing, or unreachable."""


class MigrationError(QuantFlowError):
    """Alembic could not bring the schema to the head revision."""


class ScriptRerun(QuantFlowError, RuntimeError):
    """A worker process, importing the main script as Python's multiprocessing does, ran its
    top-level code again and reached the library: the script's code belongs under
    `if __name__ == "__main__":`. Raised before anything is opened or stored."""


class BacktestError(QuantFlowError):
    """Base class of the errors raised by `quantflow_async.backtest`."""


class BarsError(BacktestError, ValueError):
    """A bars file or array that cannot be simulated: missing column, bad value, bad order.

    `path` is the file (or "<arrays>" for bars made in memory), `row` the 1-based line number
    in a CSV file (the header is line 1), the 1-based row in a Parquet file, or the 0-based
    index into in-memory arrays; `column` is the column as the file spells it. `row` and
    `column` are None where they do not apply (an empty file has no column to name).
    """

    def __init__(self, path: str, row: int | None, column: str | None, reason: str) -> None:
        where = [path]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {reason}")
        self.path = path
        self.row = row
        self.column = column
        self.reason = reason


class StrategyConfigError(BacktestError, ValueError):
    """A backtest setting that cannot be used; `key` names it.

    Raised for an unknown strategy, an unknown or missing strategy parameter, a value of the
    wrong type or out of range, and a bad cash, commission or slippage.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class BacktestFailed(BacktestError):
    """The strategy raised during a stored run; the backtest is marked failed.

    `backtest_id` is the stored backtest, whose `results["error"]` holds the error; the
    strategy's own exception is chained as `__cause__`.
    """

    def __init__(self, backtest_id: int, error: BaseException) -> None:
        super().__init__(f"backtest {backtest_id} failed: {type(error).__name__}: {error}")
        self.backtest_id = backtest_id


class WriterError(QuantFlowError):
    """Base class of the errors raised by TradeWriter."""


class QueueFull(WriterError):
    """`submit_nowait()` found the writer's queue at `max_queue`."""


class WriterNotRunning(WriterError):
    """The writer was used before it was started, or started a second time."""


class WriterClosed(WriterError):
    """The writer was closed: it accepts no more fills."""


class FillRejected(WriterError):
    """The database refused this fill; the other fills of its batch were committed."""

    def __init__(self, fill: Fill, reason: str) -> None:
        super().__init__(f"fill rejected ({reason}): {fill!r}")
        self.fill = fill
        self.reason = reason


class WriterFailed(WriterError):
    """The writer stopped for good; `unwritten` holds the accepted fills it did not commit."""

    def __init__(self, message: str, unwritten: Sequence[Fill]) -> None:
        super().__init__(f"{message} ({len(unwritten)} accepted fills were not committed)")
        self.unwritten: tuple[Fill, ...] = tuple(unwritten)


class LiveError(QuantFlowError):
    """Base class of the errors raised by the order journal, the venues and the live runner."""


class OrderEventRefused(LiveError):
    """An order event the state machine forbids: a fill on a cancelled order, more filled than
    ordered, an event for an order the journal does not know. The event is kept in the journal
    as refused; nothing accepted before it changes."""

    def __init__(self, client_order_id: str | None, event: str, reason: str) -> None:
        order = f"order {client_order_id!r}" if client_order_id else "an unknown order"
        super().__init__(f"{event} refused for {order}: {reason}")
        self.client_order_id = client_order_id
        self.event = event
        self.reason = reason


class VenueError(LiveError):
    """A venue call that could not be settled; `venue` names the venue."""

    def __init__(self, venue: str, message: str) -> None:
        super().__init__(f"{venue}: {message}")
        self.venue = venue


class VenueUnavailable(VenueError):
    """The venue could not be reached or kept failing past the retry budget."""


class VenueRejected(VenueError):
    """The venue refused the request (bad order, insufficient funds, bad signature); `code` is
    the venue's own error code where it gave one."""

    def __init__(self, venue: str, message: str, code: int | str | None = None) -> None:
        super().__init__(venue, message)
        self.code = code


class MalformedVenueAnswer(VenueError):
    """An answer the venue gave that cannot be read; `field` names what was wrong."""

    def __init__(self, venue: str, field: str, message: str) -> None:
        super().__init__(venue, f"malformed answer, {field}: {message}")
        self.field = field

"""Driver errors become the library's errors at one boundary: a server that is down, a delete
racing an insert, and repositories that leave the translating to that boundary."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import false, insert, select, text
from sqlalchemy.exc import PendingRollbackError

from quantflow_async import Conflict, Database, StorageError, StorageUnavailable
from quantflow_async.store.driver_errors import raise_masked_cancellation
from quantflow_async.store.repositories._common import insert_returning
from quantflow_async.store.schema import strategies

from ..conftest import T0, make_fill

REPOSITORIES = Path(__file__).resolve().parents[2] / "src/quantflow_async/store/repositories"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens once the socket is closed


CALLS: dict[str, Callable[[Database], Awaitable[object]]] = {
    "strategies.list": lambda db: db.strategies.list(),
    "backtests.get": lambda db: db.backtests.get(1),
    "trades.list": lambda db: db.trades.list(),
    "trades.summary": lambda db: db.trades.summary(),
    "trades.count": lambda db: db.trades.count(),
    "trades.insert_many": lambda db: db.trades.insert_many([make_fill(1)]),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
async def test_a_server_that_is_down_gives_storage_unavailable(
    call: Callable[[Database], Awaitable[object]],
) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/quantflow"
    pytest.importorskip("asyncpg")
    async with Database(url) as db:
        with pytest.raises(StorageUnavailable, match="cannot be reached") as caught:
            await call(db)
    assert isinstance(caught.value.__cause__, OSError)


@pytest.mark.postgres
async def test_a_database_the_server_does_not_have_is_named_as_such(
    postgres_server_database: str,
) -> None:
    """The server was reached; only the database is missing."""
    url = postgres_server_database.rsplit("/", 1)[0] + "/quantflow_no_such_database"
    async with Database(url) as db:
        with pytest.raises(StorageUnavailable, match="the server has no such database") as caught:
            await db.strategies.list()
    assert "cannot be reached" not in str(caught.value)
    assert "create it (createdb)" in str(caught.value)


async def _wait_until_blocked_on_a_lock(db: Database, deadline: float = 10.0) -> None:
    async def blocked() -> bool:
        async with db.engine.connect() as conn:
            waiting = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        return bool(waiting)

    async with asyncio.timeout(deadline):
        while not await blocked():
            await asyncio.sleep(0.01)


@pytest.mark.postgres
async def test_deleting_a_strategy_while_its_first_trade_is_inserted_is_a_conflict(
    postgres_database_url: str,
) -> None:
    async with Database(postgres_database_url) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="racing")
        async with db.engine.connect() as other:
            # The other transaction inserts the strategy's first trade and has not committed.
            await other.execute(
                text(
                    "INSERT INTO trades (strategy_id, symbol, side, quantity, price, executed_at)"
                    " VALUES (:id, 'BTCUSDT', 'buy', 1, 1, :at)"
                ),
                {"id": strategy.id, "at": T0},
            )
            deleting = asyncio.create_task(db.strategies.delete(strategy.id))
            await _wait_until_blocked_on_a_lock(db)
            await other.commit()
            with pytest.raises(Conflict, match=f"strategy {strategy.id}"):
                await deleting
        assert await db.trades.count(strategy_id=strategy.id) == 1
        assert (await db.strategies.get(strategy.id)).name == "racing"


DRIVER_EXCEPTION = re.compile(
    r"except \(?(DRIVER_ERRORS|Exception|SQLAlchemyError|IntegrityError|DBAPIError|OSError"
    r"|sqlite3|asyncpg)|storage_error\("
)


def test_repositories_leave_translating_driver_errors_to_the_boundary() -> None:
    # Each repository call runs inside driver_errors.translated_errors; none catches a
    # driver's exception itself.
    for module in REPOSITORIES.glob("*.py"):
        found = DRIVER_EXCEPTION.findall(module.read_text())
        assert not found, f"{module.name} translates driver errors itself: {found}"


async def test_a_driver_error_raised_in_place_of_a_cancellation_gives_the_cancellation_back() -> (
    None
):
    # SQLAlchemy, rolling back after a cancelled statement, may raise its own error instead.
    cancellation = asyncio.CancelledError("the caller's")
    async with being_cancelled():
        with pytest.raises(asyncio.CancelledError) as raised:
            raise_masked_cancellation(_raised_while_handling(cancellation, PendingRollbackError))
    assert raised.value is cancellation


async def test_an_old_cancellation_behind_the_error_of_a_task_nobody_cancels_stays_behind_it() -> (
    None
):
    # A task that handled a cancellation and went on, then hit a driver error.
    raise_masked_cancellation(
        _raised_while_handling(asyncio.CancelledError(), PendingRollbackError)
    )


async def test_a_cancellation_a_timeout_absorbed_stays_behind_it() -> None:
    # asyncpg's connect timeout: asyncio.timeout turns its own cancellation into TimeoutError.
    timeout = _raised_while_handling(asyncio.CancelledError(), TimeoutError)
    async with being_cancelled():
        raise_masked_cancellation(timeout)
        raise_masked_cancellation(_raised_while_handling(timeout, PendingRollbackError))


def _raised_while_handling(earlier: BaseException, kind: type[Exception]) -> Exception:
    """A `kind` error raised while `earlier` was being handled (its __context__)."""
    try:
        try:
            raise earlier
        except BaseException:
            if kind is PendingRollbackError:
                raise PendingRollbackError("rollback first", None, None) from None
            raise kind("later") from None
    except Exception as later:
        return later
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def being_cancelled() -> AsyncIterator[None]:
    """The block runs in a task being cancelled; the cancellation is absorbed after it."""
    task = asyncio.current_task()
    assert task is not None
    task.cancel()
    try:
        yield
    finally:
        task.uncancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)  # where the cancellation is delivered


async def test_an_insert_that_stores_no_row_is_a_storage_error_naming_the_action(
    db: Database,
) -> None:
    """`insert_returning` is for an INSERT of one row: one that stores none (here, an
    INSERT ... SELECT of no row) is a StorageError, never a row that is not there."""
    nothing = select(strategies.c.name, strategies.c.config).where(false())
    statement = (
        insert(strategies).from_select(["name", "config"], nothing).returning(strategies.c.id)
    )
    with pytest.raises(StorageError, match="creating nothing: the database stored no row"):
        await insert_returning(
            db.engine, statement, "creating nothing", row_error=lambda exc: StorageError("x")
        )

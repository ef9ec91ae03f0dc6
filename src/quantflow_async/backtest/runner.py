"""One backtest run into the store: the row, its status, its fills through the writer, its results.

    backtest = await run_stored_backtest(db, "sma_cross", bars, {"fast": 10, "slow": 20},
                                         strategy_id=strategy.id, cash=10_000, commission=0.002)

The lifecycle is pending -> running -> completed; a strategy that raises leaves the backtest
failed with the error in its results, a cancelled run leaves it cancelled. Fills carry ids
made from the backtest and the execution's sequence, so running a backtest again
(`resume_backtest`) stores only the fills that are missing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import anyio

from quantflow_async.backtest.bars import Bars, check_storable
from quantflow_async.backtest.conversion import (
    error_document,
    fill_chunks,
    results_document,
    storable,
)
from quantflow_async.backtest.engine import BacktestResult
from quantflow_async.backtest.spec import RunOptions, RunSpec
from quantflow_async.backtest.strategy import Strategy
from quantflow_async.database import Database
from quantflow_async.errors import BacktestFailed, InvalidTransition, QuantFlowError
from quantflow_async.ingest.writer import TradeWriter
from quantflow_async.records import Backtest

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

CLEANUP_SECONDS: Final = 30.0
"""How long the status change of a cancelled or failed run may take, shielded from the
cancellation that caused it."""


async def run_stored_backtest(
    db: Database,
    strategy: str | type[Strategy],
    bars: Bars,
    config: Mapping[str, Any] | None = None,
    *,
    strategy_id: int,
    name: str | None = None,
    writer: TradeWriter | None = None,
    **options: Unpack[RunOptions],
) -> Backtest:
    """Run a backtest and store it: the row, every execution as a fill, metrics and results.

    `options` are a run's (RunOptions: cash, commission, slippage, symbol, margin and the
    rest, as `run_backtest` takes them); the stored fills' prices are rounded to
    `price_decimals` (default: the most decimals the bars' prices have), their fees and
    pnl to `money_decimals`, half-even. `strategy_id` is the stored strategy the
    backtest belongs to; `name` defaults to the strategy, symbol and parameters. Fills go
    through `writer` if given (left open), else through a writer of its own. Returns the
    completed backtest. Raises StrategyConfigError before anything is stored for a bad
    parameter, BacktestFailed (the strategy's error as its cause) once the backtest is
    stored as failed; a cancelled run is stored as cancelled, its committed fills kept.
    """
    spec = RunSpec.of(strategy, config, **options)
    check_storable(bars)
    backtest = await create_backtest(db, spec, bars, strategy_id=strategy_id, name=name)
    return await _run(db, backtest, spec, bars, writer)


async def resume_backtest(
    db: Database,
    backtest_id: int,
    bars: Bars,
    *,
    strategy: str | type[Strategy] | None = None,
    writer: TradeWriter | None = None,
) -> Backtest:
    """Run a stored backtest that never finished (pending, or running when its process
    died) again from its stored config, over the same `bars`; store the fills it is missing.

    `strategy` is needed only for a Strategy class that is not registered by name. A
    backtest already completed, failed or cancelled raises InvalidTransition.
    """
    backtest = await db.backtests.get(backtest_id)
    if backtest.status not in ("pending", "running"):
        raise InvalidTransition(backtest.id, backtest.status, "running")
    spec = RunSpec.from_config(backtest.config, float(backtest.initial_capital), strategy)
    return await _run(db, backtest, spec, bars, writer)


async def create_backtest(
    db: Database, spec: RunSpec, bars: Bars, *, strategy_id: int, name: str | None = None
) -> Backtest:
    """The pending backtest row of `spec` over `bars`: its dates are the first and last bar."""
    return await db.backtests.create(
        strategy_id=strategy_id,
        name=spec.default_name() if name is None else name,
        start_date=bars.time_at(0),
        end_date=bars.time_at(len(bars) - 1),
        initial_capital=spec.cash,
        config=spec.config_document(bars),
    )


async def mark_completed(
    db: Database, backtest_id: int, metrics: Mapping[str, Any], results: Mapping[str, Any]
) -> Backtest:
    """Store a finished run's metrics and results in their storable form and mark it
    completed, in one statement; the stored backtest is read back."""
    return await db.backtests.set_status(
        backtest_id, "completed", metrics=storable(metrics), results=storable(results)
    )


async def record_completed(
    db: Database, backtest_id: int, metrics: Mapping[str, Any], results: Mapping[str, Any]
) -> None:
    """`mark_completed` without reading the backtest back, for the sweeps: the same storable
    documents, the same one statement."""
    await db.backtests.complete(backtest_id, metrics=storable(metrics), results=storable(results))


async def mark_failed(db: Database, backtest_id: int, results: Mapping[str, Any]) -> None:
    """Store the error document and mark the backtest failed, even inside a cancelled scope.

    A document the store still refuses is logged and left out: the backtest ends failed
    all the same, never running.
    """
    with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
        try:
            await db.backtests.save_results(backtest_id, results=storable(results))
        except QuantFlowError as exc:
            log.error("backtest %d: its error could not be stored: %s", backtest_id, exc)
        await _finish(db, backtest_id, "failed")


async def mark_cancelled(db: Database, backtest_ids: list[int]) -> None:
    """Mark every backtest of `backtest_ids` that has not finished cancelled, shielded."""
    with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
        for backtest_id in backtest_ids:
            await _finish(db, backtest_id, "cancelled")


async def _finish(db: Database, backtest_id: int, status: str) -> None:
    try:
        await db.backtests.set_status(backtest_id, status)
    except InvalidTransition as exc:  # finished already: a final status is never changed
        log.debug("backtest %d stays %s", backtest_id, exc.current)


async def _run(
    db: Database, backtest: Backtest, spec: RunSpec, bars: Bars, writer: TradeWriter | None
) -> Backtest:
    if backtest.status == "pending":
        await db.backtests.set_status(backtest.id, "running")
    try:
        # In a thread, so the event loop (and a writer on it) keeps running meanwhile.
        result = await anyio.to_thread.run_sync(spec.run, bars)
    except anyio.get_cancelled_exc_class():
        await mark_cancelled(db, [backtest.id])
        raise
    except Exception as exc:
        await mark_failed(db, backtest.id, error_document(exc))
        # Raised once the backtest is stored failed: even an error whose text cannot be
        # made (BacktestFailed's own message fails then) leaves it failed, not running.
        raise BacktestFailed(backtest.id, exc) from exc
    try:
        if writer is None:
            async with db.writer() as own_writer:
                await _store_fills(own_writer, result, backtest)
        else:
            await _store_fills(writer, result, backtest)
        return await mark_completed(db, backtest.id, result.metrics, results_document(result))
    except anyio.get_cancelled_exc_class():
        await mark_cancelled(db, [backtest.id])
        raise
    except Exception as exc:  # the store failed: the run is not stored, so it failed
        await mark_failed(db, backtest.id, error_document(exc))
        raise


async def _store_fills(writer: TradeWriter, result: BacktestResult, backtest: Backtest) -> None:
    """Submit every fill and wait until they are committed (flush)."""
    chunks = fill_chunks(result, strategy_id=backtest.strategy_id, backtest_id=backtest.id)
    while chunk := await anyio.to_thread.run_sync(next, chunks, None):  # Fills made off-loop
        await writer.submit_many(chunk)
    await writer.flush()

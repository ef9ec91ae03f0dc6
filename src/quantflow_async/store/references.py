"""Which fills point at a strategy or backtest that does not exist (or not together), found
for a whole batch in one read, so a refused batch need not be split fill by fill."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.errors import Conflict, NotFound, QuantFlowError
from quantflow_async.records import Fill
from quantflow_async.store.engine import read_transaction
from quantflow_async.store.schema import backtests, strategies


async def broken_references(
    engine: AsyncEngine, fills: Sequence[Fill]
) -> dict[int, QuantFlowError]:
    """Index -> the error naming the missing or mismatched id, for each such fill."""
    strategy_ids = {fill.strategy_id for fill in fills}
    backtest_ids = {fill.backtest_id for fill in fills if fill.backtest_id is not None}
    async with read_transaction(engine) as conn:
        known = set(
            await conn.scalars(select(strategies.c.id).where(strategies.c.id.in_(strategy_ids)))
        )
        owners: dict[int, int] = {}
        if backtest_ids:
            rows = await conn.execute(
                select(backtests.c.id, backtests.c.strategy_id).where(
                    backtests.c.id.in_(backtest_ids)
                )
            )
            owners = {backtest: owner for backtest, owner in rows}
    found: dict[int, QuantFlowError] = {}
    for index, fill in enumerate(fills):
        error = _broken(fill, known, owners)
        if error is not None:
            found[index] = error
    return found


def _broken(fill: Fill, known: set[int], owners: dict[int, int]) -> QuantFlowError | None:
    if fill.strategy_id not in known:
        return NotFound("strategy", fill.strategy_id, field="strategy_id")
    if fill.backtest_id is None:
        return None
    owner = owners.get(fill.backtest_id)
    if owner is None:
        return NotFound("backtest", fill.backtest_id, field="backtest_id")
    if owner != fill.strategy_id:
        return Conflict(
            f"backtest {fill.backtest_id} belongs to strategy {owner}, "
            f"not to strategy {fill.strategy_id}"
        )
    return None

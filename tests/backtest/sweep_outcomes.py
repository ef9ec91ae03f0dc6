"""What a stored sweep holds, job by job, to compare a resumed sweep with an uninterrupted one:
each job key's status, metrics and fills, read straight from the tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from quantflow_async import Database
from quantflow_async.store.schema import backtests, trades

Outcome = tuple[str, Any, tuple[tuple[Any, ...], ...]]


async def outcomes(db: Database, sweep_id: int) -> dict[str, Outcome]:
    """{job key: (status, metrics, its fills in execution order)} of the sweep's backtests."""
    async with db.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(
                    backtests.c.id, backtests.c.job_key, backtests.c.status, backtests.c.metrics
                ).where(backtests.c.sweep_id == sweep_id)
            )
        ).all()
        fills = (
            await connection.execute(
                select(
                    trades.c.backtest_id, trades.c.executed_at, trades.c.side, trades.c.quantity,
                    trades.c.price, trades.c.fee, trades.c.pnl,
                )
                .where(trades.c.backtest_id.in_([row.id for row in rows]))
                .order_by(trades.c.backtest_id, trades.c.executed_at, trades.c.id)
            )
        ).all()  # fmt: skip
    by_backtest: dict[int, list[tuple[Any, ...]]] = {}
    for fill in fills:
        by_backtest.setdefault(fill[0], []).append(tuple(fill[1:]))
    assert len({row.job_key for row in rows}) == len(rows), "a job stored twice"
    return {
        row.job_key: (row.status, row.metrics, tuple(by_backtest.get(row.id, ()))) for row in rows
    }


async def orphans(db: Database) -> dict[str, int]:
    """Backtests left pending or running, and fills of a backtest that did not complete."""
    async with db.engine.connect() as connection:
        unfinished = await connection.scalar(
            select(func.count()).where(backtests.c.status.in_(["pending", "running"]))
        )
        stray = await connection.scalar(
            select(func.count())
            .select_from(trades.join(backtests, trades.c.backtest_id == backtests.c.id))
            .where(backtests.c.status != "completed")
        )
    return {"unfinished backtests": int(unfinished or 0), "fills of unfinished": int(stray or 0)}


def assert_same_sweep(resumed: dict[str, Outcome], uninterrupted: dict[str, Outcome]) -> None:
    """The same jobs, every one completed, with the same metrics and the same fills."""
    assert resumed.keys() == uninterrupted.keys()
    assert {status for status, _, _ in resumed.values()} == {"completed"}
    for key, (_, metrics, fills) in uninterrupted.items():
        assert resumed[key][1] == metrics, key
        assert resumed[key][2] == fills, key
    assert sum(len(f) for _, _, f in resumed.values()) == sum(
        len(f) for _, _, f in uninterrupted.values()
    )

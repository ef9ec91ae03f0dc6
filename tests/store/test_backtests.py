"""db.backtests: create with checks, list, the status lifecycle, stored results."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text

from quantflow_async import Database, InvalidTransition, InvalidValue, NotFound
from quantflow_async.store.repositories import backtests as backtests_module
from quantflow_async.store.repositories.backtests import TRANSITIONS

from ..conftest import T0, make_fill

STATUSES = list(TRANSITIONS)


async def _backtest(db: Database, strategy_id: int, name: str = "run") -> int:
    backtest = await db.backtests.create(
        strategy_id=strategy_id,
        name=name,
        start_date=T0,
        end_date=T0 + timedelta(days=1),
        initial_capital="1000.50",
        config={"symbols": ["BTCUSDT"]},
    )
    return backtest.id


async def test_create_starts_pending_with_exact_capital(db: Database, strategy_id: int) -> None:
    backtest = await db.backtests.get(await _backtest(db, strategy_id))
    assert backtest.status == "pending"
    assert str(backtest.initial_capital) == "1000.50"
    assert backtest.config == {"symbols": ["BTCUSDT"]}
    assert backtest.start_date == T0


async def test_create_for_a_missing_strategy_raises_not_found(db: Database) -> None:
    with pytest.raises(NotFound, match="strategy with id=999"):
        await _backtest(db, 999)


@pytest.mark.parametrize(
    "field, changes, message",
    [
        ("end_date", {"end_date": T0}, "after start_date"),
        ("initial_capital", {"initial_capital": 0}, "> 0"),
        ("initial_capital", {"initial_capital": "-5"}, "> 0"),
        ("initial_capital", {"initial_capital": float("nan")}, "finite"),
        ("start_date", {"start_date": T0.replace(tzinfo=None)}, "timezone-aware"),
        ("name", {"name": ""}, "non-empty"),
    ],
)
async def test_bad_arguments_name_their_field(
    db: Database, strategy_id: int, field: str, changes: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {
        "strategy_id": strategy_id,
        "name": "run",
        "start_date": T0,
        "end_date": T0 + timedelta(days=1),
        "initial_capital": 100,
        **changes,
    }
    with pytest.raises(InvalidValue, match=message) as caught:
        await db.backtests.create(**arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


async def test_list_by_strategy_and_status(db: Database, strategy_id: int) -> None:
    other = (await db.strategies.create(name="other")).id
    first = await _backtest(db, strategy_id, "first")
    await _backtest(db, other, "elsewhere")
    second = await _backtest(db, strategy_id, "second")
    await db.backtests.set_status(second, "running")
    assert [b.id for b in await db.backtests.list(strategy_id=strategy_id)] == [first, second]
    assert [b.id for b in await db.backtests.list(status="running")] == [second]
    assert len(await db.backtests.list()) == 3


@pytest.mark.parametrize("final", ["completed", "failed", "cancelled"])
async def test_lifecycle_runs_pending_running_then_a_final_status(
    db: Database, backtest_id: int, final: str
) -> None:
    assert (await db.backtests.set_status(backtest_id, "running")).status == "running"
    assert (await db.backtests.set_status(backtest_id, final)).status == final


ALLOWED = {(old, new) for old, targets in TRANSITIONS.items() for new in targets}
FORBIDDEN = [(old, new) for old in STATUSES for new in STATUSES if (old, new) not in ALLOWED]


@pytest.mark.parametrize("current, requested", FORBIDDEN)
async def test_every_other_transition_is_refused(
    db: Database, backtest_id: int, current: str, requested: str
) -> None:
    path = {"pending": [], "running": ["running"], "cancelled": ["cancelled"]}.get(
        current, ["running", current]
    )
    for status in path:
        await db.backtests.set_status(backtest_id, status)
    with pytest.raises(InvalidTransition, match=f"'{current}' to '{requested}'"):
        await db.backtests.set_status(backtest_id, requested)
    assert (await db.backtests.get(backtest_id)).status == current


async def test_a_status_with_its_metrics_and_results_is_one_change(
    db: Database, backtest_id: int
) -> None:
    await db.backtests.set_status(backtest_id, "running")
    done = await db.backtests.set_status(
        backtest_id, "completed", metrics={"trades": 3}, results={"equity": [1.5, 2.25]}
    )
    assert (done.status, done.metrics, done.results) == (
        "completed",
        {"trades": 3},
        {"equity": [1.5, 2.25]},
    )
    assert await db.backtests.get(backtest_id) == done


async def test_a_refused_status_stores_none_of_its_metrics_or_results(
    db: Database, backtest_id: int
) -> None:
    with pytest.raises(InvalidTransition, match="'pending' to 'completed'"):
        await db.backtests.set_status(backtest_id, "completed", metrics={"trades": 3}, results={})
    kept = await db.backtests.get(backtest_id)
    assert (kept.status, kept.metrics, kept.results) == ("pending", None, None)
    with pytest.raises(InvalidValue, match="metrics"):
        await db.backtests.set_status(backtest_id, "running", metrics={"x": float("nan")})
    assert (await db.backtests.get(backtest_id)).status == "pending"


async def test_complete_stores_the_outcome_as_set_status_does_without_reading_it_back(
    db: Database, backtest_id: int
) -> None:
    await db.backtests.set_status(backtest_id, "running")
    returned = await db.backtests.complete(
        backtest_id, metrics={"trades": 3}, results={"equity": [1.5, 2.25]}
    )
    assert returned is None
    done = await db.backtests.get(backtest_id)
    assert (done.status, done.metrics, done.results) == (
        "completed",
        {"trades": 3},
        {"equity": [1.5, 2.25]},
    )
    with pytest.raises(InvalidTransition, match="'completed' to 'completed'"):
        await db.backtests.complete(backtest_id, metrics={}, results={})


async def test_complete_refuses_what_set_status_refuses_and_stores_none_of_it(
    db: Database, backtest_id: int
) -> None:
    with pytest.raises(InvalidTransition, match="'pending' to 'completed'"):
        await db.backtests.complete(backtest_id, metrics={"trades": 3}, results={})
    await db.backtests.set_status(backtest_id, "running")
    with pytest.raises(InvalidValue, match="results"):
        await db.backtests.complete(backtest_id, metrics={}, results={"x": float("inf")})
    kept = await db.backtests.get(backtest_id)
    assert (kept.status, kept.metrics, kept.results) == ("running", None, None)
    with pytest.raises(NotFound, match="backtest with id=31"):
        await db.backtests.complete(31, metrics={}, results={})


async def test_set_status_of_a_missing_backtest_raises_not_found(db: Database) -> None:
    with pytest.raises(NotFound, match="backtest with id=31"):
        await db.backtests.set_status(31, "running")


async def test_unknown_status_is_invalid_value(db: Database, backtest_id: int) -> None:
    with pytest.raises(InvalidValue, match="status"):
        await db.backtests.set_status(backtest_id, "done")


async def test_set_status_many_moves_each_backtest_in_one_call(
    db: Database, strategy_id: int
) -> None:
    ids = [await _backtest(db, strategy_id, f"run {n}") for n in range(3)]
    await db.backtests.set_status_many(ids, "running")
    assert [(await db.backtests.get(i)).status for i in ids] == ["running"] * 3
    await db.backtests.set_status_many([], "failed")  # nothing to move
    assert [(await db.backtests.get(i)).status for i in ids] == ["running"] * 3


async def test_set_status_many_moves_the_others_then_names_one_that_cannot_move(
    db: Database, strategy_id: int
) -> None:
    done, first, last = [await _backtest(db, strategy_id, f"run {n}") for n in range(3)]
    await db.backtests.set_status(done, "cancelled")
    with pytest.raises(InvalidTransition, match="'cancelled' to 'running'"):
        await db.backtests.set_status_many([first, done, last], "running")
    statuses = [(await db.backtests.get(i)).status for i in (first, done, last)]
    assert statuses == ["running", "cancelled", "running"]
    with pytest.raises(NotFound, match="backtest with id=999"):
        await db.backtests.set_status_many([999, first], "completed")
    assert (await db.backtests.get(first)).status == "completed"


async def test_set_status_many_refuses_a_backtest_named_twice_or_an_unknown_status(
    db: Database, backtest_id: int
) -> None:
    with pytest.raises(InvalidValue, match="backtest_ids: name each backtest once"):
        await db.backtests.set_status_many([backtest_id, backtest_id], "running")
    with pytest.raises(InvalidValue, match="status"):
        await db.backtests.set_status_many([], "done")
    assert (await db.backtests.get(backtest_id)).status == "pending"


async def test_set_status_many_takes_any_iterable_and_moves_many_a_slice_at_a_time(
    db: Database, strategy_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backtests_module, "_IDS_PER_STATEMENT", 2)
    ids = [await _backtest(db, strategy_id, f"run {n}") for n in range(5)]
    await db.backtests.set_status(ids[3], "cancelled")
    with pytest.raises(InvalidTransition, match=f"backtest {ids[3]} .*'cancelled' to 'running'"):
        await db.backtests.set_status_many((i for i in ids), "running")
    statuses = [(await db.backtests.get(i)).status for i in ids]
    assert statuses == ["running", "running", "running", "cancelled", "running"]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_set_status_many_of_no_backtest_does_not_wait_for_the_write_lock(
    db: Database, tmp_path: Path
) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "test.sqlite3")) as other:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        with anyio.fail_after(1):
            await db.backtests.set_status_many([], "running")


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_set_status_many_never_waits_for_a_fill_being_inserted_for_its_backtest(
    db: Database, strategy_id: int
) -> None:
    # Inserting a fill locks its backtest's row for the foreign key check (FOR KEY SHARE).
    # A status move must not wait for that lock: the writer inserting the next fill could
    # then wait for the move, and PostgreSQL would end one of them as a deadlock.
    first, second = [await _backtest(db, strategy_id, f"run {n}") for n in range(2)]
    fill = (
        "INSERT INTO trades (backtest_id, strategy_id, symbol, side, quantity, price,"
        " executed_at) VALUES (:backtest, :strategy, 'BTCUSDT', 'buy', 1, 1, now())"
    )
    async with db.engine.connect() as writer, writer.begin():
        await writer.execute(text(fill), {"backtest": second, "strategy": strategy_id})
        with anyio.fail_after(10):
            await db.backtests.set_status_many([first, second], "running")
        await writer.execute(text(fill), {"backtest": first, "strategy": strategy_id})
    assert [(await db.backtests.get(i)).status for i in (first, second)] == ["running"] * 2


async def test_save_results_stores_metrics_and_results(db: Database, backtest_id: int) -> None:
    saved = await db.backtests.save_results(
        backtest_id,
        metrics={"sharpe": "1.25", "trades": 10},
        results={"equity": [["2024-01-01", "1000"]]},
    )
    assert saved.metrics == {"sharpe": "1.25", "trades": 10}
    assert (await db.backtests.get(backtest_id)).results == {"equity": [["2024-01-01", "1000"]]}


async def test_save_results_refuses_values_json_cannot_hold(db: Database, backtest_id: int) -> None:
    with pytest.raises(InvalidValue, match="metrics"):
        await db.backtests.save_results(backtest_id, metrics={"sharpe": float("nan")})


async def test_deleting_a_backtest_deletes_its_trades(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    await db.trades.insert_many(
        [make_fill(strategy_id, n, backtest_id=backtest_id) for n in range(3)]
    )
    await db.trades.insert_many([make_fill(strategy_id, 10)])  # a live trade stays
    await db.backtests.delete(backtest_id)
    assert await db.trades.count() == 1
    with pytest.raises(NotFound):
        await db.backtests.get(backtest_id)

"""db.strategies: create, read, update, delete; names unique; missing ids named."""

from __future__ import annotations

import pytest

from quantflow_async import Conflict, Database, InvalidValue, NotFound, Strategy

from ..conftest import make_fill


async def test_create_returns_an_immutable_record(db: Database) -> None:
    strategy = await db.strategies.create(
        name="sma-cross", config={"fast": 10}, description="two moving averages"
    )
    assert isinstance(strategy, Strategy)
    assert (strategy.name, strategy.config, strategy.status) == (
        "sma-cross",
        {"fast": 10},
        "inactive",
    )
    with pytest.raises(AttributeError):
        strategy.name = "other"  # type: ignore[misc]


async def test_get_and_get_by_name_find_the_same_strategy(db: Database, strategy_id: int) -> None:
    by_id = await db.strategies.get(strategy_id)
    assert await db.strategies.get_by_name(by_id.name) == by_id


async def test_duplicate_name_raises_conflict(db: Database) -> None:
    await db.strategies.create(name="twin")
    with pytest.raises(Conflict, match="twin"):
        await db.strategies.create(name="twin")


async def test_missing_id_raises_not_found_naming_it(db: Database) -> None:
    with pytest.raises(NotFound, match="strategy with id=4242 does not exist"):
        await db.strategies.get(4242)
    with pytest.raises(NotFound, match="'ghost'"):
        await db.strategies.get_by_name("ghost")


async def test_list_filters_by_status_in_creation_order(db: Database) -> None:
    await db.strategies.create(name="a", status="active")
    await db.strategies.create(name="b")
    await db.strategies.create(name="c", status="active")
    assert [s.name for s in await db.strategies.list()] == ["a", "b", "c"]
    assert [s.name for s in await db.strategies.list(status="active")] == ["a", "c"]


async def test_update_changes_only_the_given_fields(db: Database, strategy_id: int) -> None:
    before = await db.strategies.get(strategy_id)
    after = await db.strategies.update(
        strategy_id, status="active", metrics={"sharpe": "1.4"}, description=None
    )
    assert (after.status, after.metrics, after.description) == ("active", {"sharpe": "1.4"}, None)
    assert (after.name, after.config) == (before.name, before.config)


async def test_update_to_a_taken_name_raises_conflict(db: Database, strategy_id: int) -> None:
    await db.strategies.create(name="taken")
    with pytest.raises(Conflict, match="taken"):
        await db.strategies.update(strategy_id, name="taken")


async def test_update_of_a_missing_strategy_raises_not_found(db: Database) -> None:
    with pytest.raises(NotFound, match="id=77"):
        await db.strategies.update(77, status="active")


async def test_delete_removes_an_unused_strategy(db: Database, strategy_id: int) -> None:
    await db.strategies.delete(strategy_id)
    with pytest.raises(NotFound):
        await db.strategies.get(strategy_id)
    with pytest.raises(NotFound):
        await db.strategies.delete(strategy_id)


async def test_strategy_with_backtests_is_not_deleted(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    with pytest.raises(Conflict, match="1 backtests"):
        await db.strategies.delete(strategy_id)
    assert (await db.strategies.get(strategy_id)).id == strategy_id


async def test_strategy_with_live_trades_is_not_deleted(db: Database, strategy_id: int) -> None:
    await db.trades.insert_many([make_fill(strategy_id)])
    with pytest.raises(Conflict, match="trades"):
        await db.strategies.delete(strategy_id)
    assert await db.trades.count(strategy_id=strategy_id) == 1


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("name", "", "non-empty"),
        ("name", "x" * 201, "longer than 200"),
        ("config", {"when": object()}, "not JSON-serialisable"),
        ("config", [1, 2], "expected a dict"),
        ("status", "running", "must be one of"),
        ("metrics", {"sharpe": float("inf")}, "not JSON-serialisable"),
        ("description", 12, "expected str"),
    ],
)
async def test_bad_arguments_name_their_field(
    db: Database, field: str, value: object, message: str
) -> None:
    arguments: dict[str, object] = {"name": "ok", field: value}
    with pytest.raises(InvalidValue, match=message) as caught:
        await db.strategies.create(**arguments)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert await db.strategies.list() == []

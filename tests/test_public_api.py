"""The public names: sorted, importable, documented; the records they return are read-only."""

from __future__ import annotations

import importlib
import json
import pickle
from datetime import UTC, datetime
from typing import Any, get_type_hints

import pytest

import quantflow_async
from quantflow_async import Backtest, Database, Strategy, Trade
from quantflow_async.records import (
    BacktestStatus,
    JsonArray,
    JsonObject,
    Side,
    StrategyStatus,
    TradeStatus,
)

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def test_all_is_sorted() -> None:
    assert quantflow_async.__all__ == sorted(quantflow_async.__all__)


def test_every_public_name_imports_and_has_a_docstring() -> None:
    module = importlib.import_module("quantflow_async")
    for name in quantflow_async.__all__:
        value = getattr(module, name)
        assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_no_public_class_has_the_docstring_dataclasses_make_up() -> None:
    # @dataclass fills an empty __doc__ with the signature: "Strategy(id: int, name: str, ...)".
    for name in quantflow_async.__all__:
        value = getattr(quantflow_async, name)
        if isinstance(value, type):
            assert not (value.__doc__ or "").startswith(f"{name}("), f"{name} needs a docstring"


def test_every_error_derives_from_quantflow_error() -> None:
    from quantflow_async import errors

    for name in dir(errors):
        value = getattr(errors, name)
        if (
            isinstance(value, type)
            and issubclass(value, Exception)
            and value.__module__ == errors.__name__
        ):
            assert issubclass(value, errors.QuantFlowError), name


def test_package_ships_type_information() -> None:
    from importlib import resources

    assert resources.files("quantflow_async").joinpath("py.typed").is_file()


def test_sides_and_statuses_are_typed_as_their_literal_choices() -> None:
    assert get_type_hints(Trade)["side"] == Side
    assert get_type_hints(Trade)["status"] == TradeStatus
    assert get_type_hints(Strategy)["status"] == StrategyStatus
    assert get_type_hints(Backtest)["status"] == BacktestStatus


def strategy(config: dict[str, Any]) -> Strategy:
    return Strategy(1, "s", config, None, "active", {"sharpe": 1.2}, NOW, NOW)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.config.__setitem__("fast", 12),
        lambda s: s.config.update(fast=12),
        lambda s: s.config.pop("fast"),
        lambda s: s.config["windows"].append(50),
        lambda s: s.config["windows"].__setitem__(0, 1),
        lambda s: s.config["nested"].clear(),
        lambda s: s.metrics.setdefault("sortino", 1.0),
    ],
    ids=["set", "update", "pop", "append to a list", "set in a list", "clear nested", "metrics"],
)
def test_json_inside_a_record_cannot_be_changed_in_place(change: Any) -> None:
    record = strategy({"fast": 10, "windows": [10, 30], "nested": {"a": 1}})
    with pytest.raises(TypeError, match="read-only"):
        change(record)
    assert record.config == {"fast": 10, "windows": [10, 30], "nested": {"a": 1}}


def test_a_record_keeps_its_own_copy_of_the_json_it_was_made_from() -> None:
    config: dict[str, Any] = {"windows": [10, 30]}
    record = strategy(config)
    config["windows"].append(50)
    assert record.config == {"windows": [10, 30]}


def test_read_only_json_is_still_plain_json() -> None:
    record = strategy({"windows": [10, 30], "nested": {"a": None}})
    assert isinstance(record.config, JsonObject) and isinstance(record.config, dict)
    assert isinstance(record.config["windows"], JsonArray)
    assert record.config == {"windows": [10, 30], "nested": {"a": None}}
    assert json.loads(json.dumps(record.config)) == record.config
    changed = {**record.config, "fast": 12}  # a changeable copy
    assert changed["fast"] == 12


def test_a_record_with_json_survives_pickling_for_worker_processes() -> None:
    record = strategy({"windows": [10, 30], "nested": {"a": 1}})
    copy = pickle.loads(pickle.dumps(record))
    assert copy == record
    assert isinstance(copy.config["nested"], JsonObject)


async def test_records_read_from_the_database_are_read_only(db: Database) -> None:
    created = await db.strategies.create(name="s", config={"windows": [10, 30]})
    for record in (created, await db.strategies.get(created.id)):
        with pytest.raises(TypeError):
            record.config["windows"].append(50)  # type: ignore[attr-defined]
        assert record.config == {"windows": [10, 30]}

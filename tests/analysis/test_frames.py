"""Trades as a pandas DataFrame and an Arrow table: exact Decimals, UTC microseconds, and
nothing of the analysis extra imported until it is used."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal, localcontext

import pandas as pd
import pyarrow as pa
import pytest

from quantflow_async import Database, InvalidValue
from quantflow_async.analysis import (
    TRADE_FIELDS,
    MissingExtra,
    arrow_schema,
    stream_to_arrow,
    stream_to_dataframe,
    trades_to_arrow,
    trades_to_dataframe,
)

from ..cli.test_cli_listings import seed_trades
from ..conftest import make_fill

EDGES = (
    datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=UTC),
)


async def test_a_dataframe_keeps_money_as_the_stored_decimals(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    stored = await seed_trades(db, strategy_id, backtest_id)
    frame = trades_to_dataframe(stored)
    assert list(frame.columns) == list(TRADE_FIELDS)
    for name in ("quantity", "price", "fee", "pnl"):
        assert frame[name].dtype == object
        values = frame[name].tolist()
        assert values == [getattr(trade, name) for trade in stored]
        assert all(value is None or type(value) is Decimal for value in values), name
    # Exact arithmetic on the columns, given the digits for it (the default context keeps 28).
    eth = frame[frame.symbol == "ETHUSDT"]
    [summary] = await db.trades.summary(symbol="ETHUSDT")
    with localcontext() as context:
        context.prec = 80
        assert sum(eth.quantity * eth.price, Decimal(0)) == summary.notional


async def test_a_dataframe_has_utc_microsecond_times_and_nullable_backtest_ids(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    stored = await seed_trades(db, strategy_id, backtest_id)
    frame = trades_to_dataframe(stored)
    for name in ("executed_at", "created_at", "updated_at"):
        assert str(frame[name].dtype) == "datetime64[us, UTC]"
        assert frame[name].dt.to_pydatetime().tolist() == [getattr(t, name) for t in stored]
    assert str(frame.backtest_id.dtype) == "Int64"
    assert frame.backtest_id.isna().tolist() == [t.backtest_id is None for t in stored]
    assert frame.metadata.tolist() == [t.metadata for t in stored]


async def test_the_earliest_and_latest_storable_instants_survive_both_forms(
    db: Database, strategy_id: int
) -> None:
    await db.trades.insert_many([make_fill(strategy_id, n, executed_at=at)
                                 for n, at in enumerate(EDGES)])  # fmt: skip
    stored = await db.trades.list()
    frame = trades_to_dataframe(stored)
    assert frame.executed_at.dt.to_pydatetime().tolist() == list(EDGES)
    assert trades_to_arrow(stored).column("executed_at").to_pylist() == list(EDGES)


async def test_a_stream_gives_the_same_dataframe_as_a_page(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    stored = await seed_trades(db, strategy_id, backtest_id)
    streamed = await stream_to_dataframe(db.trades.stream(chunk_size=3))
    pd.testing.assert_frame_equal(streamed, trades_to_dataframe(stored))


async def test_an_arrow_table_holds_decimal128_and_utc_timestamps_exactly(
    db: Database, strategy_id: int, backtest_id: int
) -> None:
    stored = await seed_trades(db, strategy_id, backtest_id)
    table = await stream_to_arrow(db.trades.stream(chunk_size=5))
    assert table.schema == arrow_schema()
    assert table.schema.field("fee").type == pa.decimal128(38, 18)
    assert table.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    for name in ("id", "quantity", "price", "fee", "pnl", "executed_at", "external_id"):
        assert table.column(name).to_pylist() == [getattr(t, name) for t in stored], name


def test_nothing_makes_an_empty_frame_and_an_empty_table_with_every_column() -> None:
    assert list(trades_to_dataframe([]).columns) == list(TRADE_FIELDS)
    assert trades_to_arrow([]).num_rows == 0


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_an_amount_arrow_cannot_hold_is_refused_naming_the_trade(
    db: Database, strategy_id: int
) -> None:
    await db.trades.insert_many([make_fill(strategy_id, 1, pnl="-" + "9" * 21)])
    [trade] = await db.trades.list()
    with pytest.raises(InvalidValue, match=f"pnl: trade {trade.id} holds -9{{21}}"):
        trades_to_arrow([trade])


def test_a_missing_pandas_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if it were not installed
    with pytest.raises(MissingExtra, match=r"pip install 'quantflow-async\[analysis\]'"):
        trades_to_dataframe([])


def test_importing_the_package_and_the_command_imports_no_analysis_package() -> None:
    code = (
        "import sys, quantflow_async, quantflow_async.analysis, quantflow_async.cli.app; "
        "quantflow_async.cli.app.build_parser(); "
        "print(sorted(m for m in ('pandas', 'pyarrow', 'matplotlib', 'rich') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_analysis_names_are_sorted_and_every_function_and_class_is_documented() -> None:
    import quantflow_async.analysis as analysis

    assert analysis.__all__ == sorted(analysis.__all__)
    for name in analysis.__all__:
        value = getattr(analysis, name)
        if isinstance(value, type) or callable(value) and hasattr(value, "__code__"):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"

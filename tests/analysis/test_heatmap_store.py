"""The heatmap of a stored sweep: its completed backtests' parameters and statistic, read in
SQL on both backends, equal the heatmap of the same backtests read one by one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quantflow_async import Database
from quantflow_async.analysis.heatmap import draw_heatmap, heatmap_of, load_heatmap
from quantflow_async.backtest import run_sweep, synthetic_bars
from quantflow_async.backtest.runner import mark_completed
from quantflow_async.errors import InvalidValue, NotFound
from quantflow_async.store.repositories.sweeps import JobRow

from ..conftest import T0

GRID = {"fast": [3, 5, 8], "slow": [20, 30]}
BARS = synthetic_bars(200, seed=5)


async def _grid_sweep(db: Database, strategy_id: int) -> int:
    result = await run_sweep(
        db, "sma_cross", GRID, BARS, strategy_id=strategy_id, workers=1,
    )  # fmt: skip
    assert result.sweep_id is not None
    return result.sweep_id


async def test_a_stored_sweeps_heatmap_is_that_of_its_backtests(
    db: Database, strategy_id: int, tmp_path: Path
) -> None:
    sweep_id = await _grid_sweep(db, strategy_id)
    loaded = await load_heatmap(db, sweep_id, "fast", "slow", "return_pct", agg="mean")
    rows = [(b.config["parameters"], b.metrics) for b in await db.backtests.list(sweep_id=sweep_id)]
    expected = heatmap_of(rows, "fast", "slow", "return_pct", agg="mean")
    assert (loaded.xs, loaded.ys) == (("3", "5", "8"), ("20", "30"))
    np.testing.assert_allclose(loaded.values, expected.values)
    assert loaded.counts.tolist() == [[1, 1, 1], [1, 1, 1]]
    assert loaded.title == f"sweep {sweep_id}: sma_cross"
    draw_heatmap(loaded, tmp_path / "heat.png")
    with Image.open(tmp_path / "heat.png") as image:
        assert image.format == "PNG"


async def test_an_unknown_parameter_names_the_sweeps_parameters(
    db: Database, strategy_id: int
) -> None:
    sweep_id = await _grid_sweep(db, strategy_id)
    with pytest.raises(InvalidValue, match=r"y: no parameter named 'slw' \(parameters: fast, slow"):
        await load_heatmap(db, sweep_id, "fast", "slw", "sharpe")


async def test_a_sweep_that_is_not_stored_or_has_no_completed_backtest_has_no_heatmap(
    db: Database, strategy_id: int
) -> None:
    with pytest.raises(NotFound, match="sweep with id=12345 does not exist"):
        await load_heatmap(db, 12345, "fast", "slow", "sharpe")
    sweep, _ = await db.sweeps.create(
        strategy_id=strategy_id, strategy="sma_cross", space={}, options={}, datasets=[]
    )
    with pytest.raises(InvalidValue, match=f"sweep {sweep.id} has no completed backtest to draw"):
        await load_heatmap(db, sweep.id, "fast", "slow", "sharpe")


async def test_choices_of_every_json_kind_read_back_as_they_were_stored(
    db: Database, strategy_id: int
) -> None:
    modes = ["a", True, None, 2.5, 7]
    rows = [
        JobRow(
            job_key=f"{n:064x}", name=f"job {n}", start_date=T0, end_date=T0 + timedelta(days=1),
            initial_capital=1000, config={"parameters": {"mode": mode, "fast": 3}},
        )
        for n, mode in enumerate(modes)
    ]  # fmt: skip
    sweep, ids = await db.sweeps.create(
        strategy_id=strategy_id, strategy="sma_cross", kind="search", space={}, options={},
        datasets=[], jobs=rows,
    )  # fmt: skip
    for n, backtest_id in enumerate(ids):
        await db.backtests.set_status(backtest_id, "running")
        await mark_completed(db, backtest_id, {"sharpe": float(n)}, {})
    heatmap = await load_heatmap(db, sweep.id, "mode", "fast", "sharpe")
    assert heatmap.xs == ("2.5", "7", "a", "null", "true")
    assert heatmap.values.tolist() == [[3.0, 4.0, 0.0, 2.0, 1.0]]

"""The backtest package loads a module when one of its names is first used: the engine alone
loads no database, and a stored run loads neither the sweep, the cluster nor Alembic."""

from __future__ import annotations

import subprocess
import sys

import quantflow_async.backtest as backtest


def modules_loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(done.stdout.split())


def test_the_engine_loads_no_database() -> None:
    loaded = modules_loaded_after("from quantflow_async.backtest import run_backtest, read_bars")
    assert {"sqlalchemy", "quantflow_async.database", "quantflow_async.backtest.sweep"}.isdisjoint(
        loaded
    )


def test_a_stored_run_loads_neither_the_sweep_the_cluster_nor_alembic() -> None:
    loaded = modules_loaded_after("from quantflow_async.backtest import run_stored_backtest")
    assert "quantflow_async.database" in loaded
    for module in ("quantflow_async.backtest.sweep", "quantflow_async.backtest.cluster", "alembic"):
        assert module not in loaded


def test_every_public_name_of_the_package_resolves() -> None:
    for name in backtest.__all__:
        assert getattr(backtest, name) is not None
    assert sorted(dir(backtest)) == dir(backtest)
    assert set(backtest.__all__) <= set(dir(backtest))

"""A package of an optional extra that is not installed is one error, MissingExtra, whose
message names the extra to install, wherever the package is needed."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import quantflow_async
from quantflow_async import errors, extras
from quantflow_async.backtest import BarsError, read_bars
from quantflow_async.extras import require_extra
from tests.support.cli import quantflow


def test_missing_extra_is_a_quantflow_error_and_a_module_not_found_error() -> None:
    assert issubclass(errors.MissingExtra, errors.QuantFlowError)
    assert issubclass(errors.MissingExtra, ModuleNotFoundError)


def test_missing_extra_is_one_class_wherever_it_is_imported_from() -> None:
    assert quantflow_async.MissingExtra is extras.MissingExtra is errors.MissingExtra


def test_a_missing_package_names_the_package_the_purpose_and_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if it were not installed
    with pytest.raises(errors.MissingExtra) as raised:
        require_extra("optuna", extra="optimize", purpose="a search")
    assert str(raised.value) == (
        "a search needs optuna, which is not installed: pip install 'quantflow-async[optimize]'"
    )
    assert raised.value.name == "optuna"


def test_parquet_bars_without_pyarrow_are_one_bars_error_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = tmp_path / "bars.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(BarsError, match=r"reading Parquet needs pyarrow, which is not installed: "
                       r"pip install 'quantflow-async\[analysis\]'"):  # fmt: skip
        read_bars(path)


def without_ccxt(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the `live` extra were not installed: ccxt cannot be imported, and the modules
    that import it at their top are imported anew."""
    monkeypatch.setitem(sys.modules, "ccxt", None)
    monkeypatch.setitem(sys.modules, "ccxt.async_support", None)
    for module in ("quantflow_async.live.ccxt_venue", "quantflow_async.live.ccxt_calls"):
        monkeypatch.delitem(sys.modules, module, raising=False)


def test_the_ccxt_venue_without_ccxt_names_the_live_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    without_ccxt(monkeypatch)
    with pytest.raises(errors.MissingExtra) as raised:
        importlib.import_module("quantflow_async.live.ccxt_venue")
    assert str(raised.value) == (
        "CcxtVenue needs ccxt, which is not installed: pip install 'quantflow-async[live]'"
    )


def test_live_run_without_ccxt_is_one_line_naming_the_live_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_ccxt(monkeypatch)
    done = quantflow(
        "live", "run", "sma_cross", "--venue", "http://127.0.0.1:9", "--symbol", "BTCUSDT",
        "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "quantflow: error: CcxtVenue needs ccxt, which is not installed: "
        "pip install 'quantflow-async[live]'"
    ]

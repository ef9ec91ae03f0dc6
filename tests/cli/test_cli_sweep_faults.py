"""`quantflow sweep` and `quantflow backtest run` on bad options, failed backtests and a report
folder that cannot be written: each mistake is found before anything is stored, and a sweep
with failures says so and exits non-zero."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from quantflow_async.cli.sweep import ranked
from tests.cli.test_cli_backtest import assert_one_line_mistake, quantflow, write_bars
from tests.cli.test_cli_sigterm import migrated, statuses, trades
from tests.support.processes import reap, sweep_workers

BAD_OPTIONS = [
    (["--commission", "2"], "--commission: must be in [0.0, 1.0), got 2.0"),
    (["--commission", "-0.5"], "--commission: must be in [0.0, 1.0), got -0.5"),
    (["--commission", "nan"], "--commission: must be a finite number, got nan"),
    (["--cash", "0"], "--cash: must be in (0.0, inf), got 0.0"),
    (["--cash", "inf"], "--cash: must be a finite number, got inf"),
]
BAD_IDS = ["commission 2", "commission -0.5", "commission nan", "cash 0", "cash inf"]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS, ids=BAD_IDS)
def test_a_bad_sweep_option_is_one_line_naming_it_and_stores_nothing(
    tmp_path: Path, options: list[str], message: str
) -> None:
    url = migrated(tmp_path)
    data = write_bars(tmp_path / "aaa.csv", 200)
    result = quantflow(
        "sweep", "sma_cross", "--data", str(data), "--grid", '{"fast": [3, 5]}', *options,
        "--database-url", url, cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, message)
    assert statuses(url) == Counter()


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS, ids=BAD_IDS)
def test_a_bad_backtest_run_option_is_one_line_naming_it_and_stores_nothing(
    tmp_path: Path, options: list[str], message: str
) -> None:
    url = migrated(tmp_path)
    data = write_bars(tmp_path / "aaa.csv", 200)
    result = quantflow(
        "backtest", "run", "sma_cross", "--data", str(data), *options, "--database-url", url,
        cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, message)
    assert statuses(url) == Counter()


def test_a_report_into_a_folder_that_cannot_be_written_fails_before_the_sweep(
    tmp_path: Path,
) -> None:
    url = migrated(tmp_path)
    data = write_bars(tmp_path / "aaa.csv", 200)
    result = quantflow(
        "sweep", "sma_cross", "--data", str(data), "--grid", '{"fast": [3, 5]}', "--json",
        "--report", "/proc/best.png", "--database-url", url, cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, "cannot write /proc/best.png")
    assert statuses(url) == Counter()


@pytest.mark.slow  # a worker killed inside a backtest of 40,000 bars, in a new process
def test_a_sweep_in_which_a_backtest_failed_prints_the_reason_and_exits_non_zero(
    tmp_path: Path,
) -> None:
    url = migrated(tmp_path)
    long = [write_bars(tmp_path / f"long{i}.csv", 40_000) for i in range(2)]
    files = [arg for path in long for arg in ("--data", str(path))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    child = subprocess.Popen(
        [sys.executable, "-m", "quantflow_async.cli", "sweep", "sma_cross", *files,
         "--grid", '{"fast": [2, 3], "slow": [8, 9, 10]}', "--json", "--database-url", url],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        while trades(url) == 0:  # a worker is inside a backtest: kill it there
            assert child.poll() is None, child.communicate()
            time.sleep(0.01)
        sweep_workers(child.pid)[0].send_signal(signal.SIGKILL)
        stdout, stderr = child.communicate(timeout=120)
    finally:
        reap(child)
    assert child.returncode == 1, stderr
    assert "Traceback" not in stderr
    document = json.loads(stdout.strip().splitlines()[-1])  # the output is kept
    assert document["failed"] >= 1
    failed = statuses(url)["failed"]
    assert document["failed"] == failed
    assert "worker process exited with code -9" in stderr
    assert stderr.splitlines()[-1].startswith(f"quantflow: error: {failed} of 12 backtests failed")
    assert document["failures"][0]["error"].startswith("ChildProcessError: the worker process")


def test_a_metric_stored_as_the_text_of_a_large_float_ranks_by_its_number() -> None:
    backtests = [
        SimpleNamespace(id=1, status="completed", metrics={"cagr_pct": 5.0}),
        SimpleNamespace(id=2, status="completed", metrics={"cagr_pct": "1.5e+24"}),
        SimpleNamespace(id=3, status="completed", metrics={"cagr_pct": None}),
    ]
    assert [b.id for b in ranked(backtests, "cagr_pct")] == [2, 1, 3]  # type: ignore[arg-type]

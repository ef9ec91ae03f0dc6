"""`quantflow sweep` on bars files and a JSON grid, called in this process (`tests.support.cli`);
the progress bar on a terminal and Ctrl-C are seen in a new process, as a person runs it."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from quantflow_async.backtest import expand_grid, read_bars, run_backtest
from tests.cli.test_cli_backtest import assert_one_line_mistake, environment, quantflow, write_bars
from tests.support.databases import migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]
GRID = {"fast": [3, 5], "slow": [10, 20]}


@pytest.fixture
def migrated(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path / "db.sqlite3")


@pytest.fixture
def data(tmp_path: Path) -> list[Path]:
    return [write_bars(tmp_path / "aaa.csv", 600), write_bars(tmp_path / "bbb.csv", 400)]


def sweep(url: str, data: list[Path], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    files = [arg for path in data for arg in ("--data", str(path))]
    return quantflow("sweep", "sma_cross", *files, *args, "--database-url", url, cwd=cwd)


def in_memory(data: list[Path], commission: float = 0.0) -> list[dict[str, object]]:
    """What the engine makes of every config on every file, in the sweep's order."""
    runs = []
    for path in data:
        bars = read_bars(path)
        for config in expand_grid(GRID):
            result = run_backtest("sma_cross", bars, config, 10_000, commission)
            runs.append({**result.metrics, "fills": len(result.executions), "config": config})
    return runs


def stored(url: str) -> tuple[Counter[str], int]:
    """Backtests by status, and the trades stored, read straight from the file."""
    with sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///")) as connection:
        statuses = Counter(s for (s,) in connection.execute("SELECT status FROM backtests"))
        (trades,) = connection.execute("SELECT count(*) FROM trades").fetchone()
    return statuses, trades


def test_json_ends_with_the_best_configs_by_return_and_every_backtest_is_stored(
    tmp_path: Path, migrated: str, data: list[Path]
) -> None:
    result = sweep(
        migrated, data, "--grid", json.dumps(GRID), "--commission", "0.001", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout.strip().splitlines()[-1])
    expected = in_memory(data, commission=0.001)
    assert len(document["backtest_ids"]) == document["completed"] == 8
    assert document["failed"] == 0
    assert document["fills_stored"] == sum(run["fills"] for run in expected)
    assert stored(migrated) == (Counter(completed=8), document["fills_stored"])
    assert document["ranked_by"] == "return_pct"
    returns = sorted((run["return_pct"] for run in expected), reverse=True)
    assert [row["return_pct"] for row in document["best"]] == returns  # all 8: fewer than --top


@pytest.mark.parametrize("metric", ["sharpe", "cagr_pct"])
def test_by_a_stored_metric_and_top_show_the_k_best_by_it(
    tmp_path: Path, migrated: str, data: list[Path], metric: str
) -> None:
    result = sweep(
        migrated, data, "--grid", json.dumps(GRID), "--by", metric, "--top", "3", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout.strip().splitlines()[-1])
    best = sorted((run[metric] for run in in_memory(data)), reverse=True)[:3]
    assert document["ranked_by"] == metric
    assert [row[metric] for row in document["best"]] == best
    # the metric ranked by comes first, then the usual ones, as in `sweeps show`
    usual = ["return_pct", "sharpe", "max_drawdown_pct", "win_rate_pct", "trades"]
    assert list(document["best"][0])[3:] == [metric, *(m for m in usual if m != metric)]


def test_lowest_ranks_the_k_lowest_by_the_metric_first(
    tmp_path: Path, migrated: str, data: list[Path]
) -> None:
    result = sweep(
        migrated, data, "--grid", json.dumps(GRID), "--by", "volatility_pct", "--lowest",
        "--top", "3", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout.strip().splitlines()[-1])
    volatilities = sorted(run["volatility_pct"] for run in in_memory(data))
    assert volatilities[:3] != volatilities[::-1][:3]  # the order is the option's to set
    assert [row["volatility_pct"] for row in document["best"]] == volatilities[:3]


def test_by_return_is_short_for_return_pct(tmp_path: Path, migrated: str, data: list[Path]) -> None:
    result = sweep(migrated, data, "--grid", json.dumps(GRID), "--by", "return", "--json",
                   cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["ranked_by"] == "return_pct"


def test_an_unknown_metric_is_refused_naming_the_stored_ones_before_any_backtest_runs(
    tmp_path: Path, migrated: str, data: list[Path]
) -> None:
    result = sweep(migrated, data, "--grid", json.dumps(GRID), "--by", "sharp", cwd=tmp_path)
    assert_one_line_mistake(
        result, "--by: 'sharp' is not a stored statistic; one of avg_drawdown_duration, "
    )
    assert "cagr_pct, " in result.stderr
    assert stored(migrated) == (Counter(), 0)


def test_piped_the_table_is_a_header_and_one_line_per_config_and_the_summary_is_on_stderr(
    tmp_path: Path, migrated: str, data: list[Path]
) -> None:
    result = sweep(migrated, data, "--grid", json.dumps(GRID), "--top", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, *rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert header[:4] == ["rank", "backtest", "data", "parameters"]
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5"]
    assert {row[2] for row in rows} <= {"AAA", "BBB"}
    fills = sum(run["fills"] for run in in_memory(data))
    assert result.stderr.splitlines() == [  # no progress bar when stderr is not a terminal
        result.stderr.splitlines()[0]
    ]
    assert f"8 backtests completed, {fills:,} fills stored in" in result.stderr


def test_a_single_value_in_the_grid_is_one_value_for_every_config(
    tmp_path: Path, migrated: str, data: list[Path]
) -> None:
    grid = '{"fast": [3, 4, 5], "slow": 12}'
    result = sweep(migrated, data[:1], "--grid", grid, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(row["parameters"]["fast"] for row in document["best"]) == [3, 4, 5]
    assert {row["parameters"]["slow"] for row in document["best"]} == {12}


def test_report_draws_the_best_backtest(tmp_path: Path, migrated: str, data: list[Path]) -> None:
    picture = tmp_path / "best.png"
    result = sweep(
        migrated, data, "--grid", json.dumps(GRID), "--report", str(picture), "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout.strip().splitlines()[-1])
    assert document["report"] == str(picture)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = tmp_path / "again.png"
    best = str(document["best"][0]["backtest_id"])
    drawn = quantflow("report", best, "-o", str(again), "--database-url", migrated, cwd=tmp_path)
    assert drawn.returncode == 0, drawn.stderr
    assert picture.read_bytes() == again.read_bytes()  # the same picture as `quantflow report`


def test_a_terminal_shows_a_progress_bar_of_backtests_done_and_fills_stored(
    tmp_path: Path, migrated: str, data: list[Path]
) -> None:
    terminal, child_end = pty.openpty()
    files = [arg for path in data for arg in ("--data", str(path))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    child = subprocess.Popen(
        [sys.executable, "-m", "quantflow_async.cli", "sweep", "sma_cross", *files,
         "--grid", json.dumps(GRID), "--database-url", migrated],
        cwd=tmp_path, env={**env, "COLUMNS": "120"}, stdout=subprocess.DEVNULL, stderr=child_end,
    )  # fmt: skip
    os.close(child_end)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    child.wait(timeout=60)
    os.close(terminal)
    assert child.returncode == 0, shown
    text = shown.decode(errors="replace")
    assert "backtests" in text and "8/8" in text
    fills = sum(run["fills"] for run in in_memory(data))
    assert f"{fills:,} fills stored" in text


def test_the_program_forks_its_workers_from_a_warm_server_and_stores_the_same(
    tmp_path: Path, data: list[Path]
) -> None:
    """`quantflow` as its own process warms multiprocessing's fork server as it starts; a
    caller's process running the command (these tests) spawns workers as the library does."""
    urls = [migrated_sqlite(tmp_path / f"{name}.sqlite3") for name in ("own", "in")]
    # A module in the working directory named like one of the standard library's: neither
    # the fork server nor a spawned worker may import it in its place.
    (tmp_path / "queue.py").write_text("# not the standard library's: it has no Queue\n")
    files = [arg for path in data for arg in ("--data", str(path))]
    command = ["-v", "sweep", "sma_cross", *files, "--grid", json.dumps(GRID), "--json"]
    program = str(Path(sys.executable).with_name("quantflow"))  # `python -m` would import
    own = subprocess.run(  # the folder's queue.py itself, before any of our code runs
        [program, *command, "--database-url", urls[0]],
        cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    inside = quantflow(*command, "--database-url", urls[1], cwd=tmp_path)
    assert own.returncode == inside.returncode == 0, own.stderr + inside.stderr
    assert "sweep: 2 worker processes (forkserver)" in own.stderr
    assert "sweep: 2 worker processes (spawn)" in inside.stderr
    best = [json.loads(run.stdout.splitlines()[-1])["best"] for run in (own, inside)]
    assert best[0] == best[1] and len(best[0]) == 8
    assert stored(urls[0]) == stored(urls[1])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["macd", "--grid", '{"fast": [5]}'], "unknown strategy 'macd'"),
        (["sma_cross", "--grid", "{fast: [5]}"], "is not valid JSON"),
        (["sma_cross", "--grid", '{"fats": [5]}'], "fats: not a parameter of SmaCross"),
        (["sma_cross", "--grid", '{"fast": [5, 50], "slow": 20}'], "slow: must be > fast"),
        (["sma_cross", "--grid", "{}"], '--grid: {} names no parameter, so it would only '
         'run the defaults; a grid gives each parameter its values, e.g. {"fast": [5, 10], '),
        (["sma_cross", "--grid", '{"fast": [5], "slow": []}'],
         "--grid: the parameter 'slow' has no value; a grid gives each parameter its values"),
        (["sma_cross", "--grid", "[1, 2]"], "must be a JSON object"),
        (["sma_cross", "--grid", '{"fast": [5]}', "--data", "x/aaa.csv"],
         "two --data files are named AAA"),
        (["sma_cross", "--grid", '{"fast": [5]}', "--report", "best.jpg"],
         "is not a .png, .svg or .pdf"),
        (["sma_cross", "--grid", '{"fast": [5]}', "--report", "no/best.png"], "no does not exist"),
        (["sma_cross", "--grid", '{"fast": [5]}', "--workers", "0"],
         "--workers: must be a whole number"),
    ],
    ids=[
        "unknown strategy", "bad JSON", "unknown key", "bad value", "no parameter",
        "a parameter without values", "not an object", "two files one symbol",
        "bad picture name", "no such folder", "no workers",
    ],
)  # fmt: skip
def test_a_mistake_is_one_line_and_leaves_no_file(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    write_bars(tmp_path / "aaa.csv", 100)
    url = f"sqlite+aiosqlite:///{tmp_path / 'never.sqlite3'}"
    result = quantflow(
        "sweep", arguments[0], "--data", "aaa.csv", *arguments[1:], "--database-url", url,
        cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, message)
    assert sorted(os.listdir(tmp_path)) == ["aaa.csv"]


def test_a_forgotten_strategy_is_named_when_the_options_come_first(tmp_path: Path) -> None:
    write_bars(tmp_path / "aaa.csv", 100)
    url = f"sqlite+aiosqlite:///{tmp_path / 'never.sqlite3'}"
    result = quantflow(
        "sweep", "--data", "aaa.csv", "--grid", '{"fast": [5]}', "--database-url", url,
        cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, "the following arguments are required: STRATEGY")
    assert sorted(os.listdir(tmp_path)) == ["aaa.csv"]


@pytest.mark.parametrize(
    "words",
    [
        ["--data", "aaa.csv", "sma_cross", "--grid", '{"fast": [5]}'],
        ["--workers", "1", "sma_cross", "--data", "aaa.csv", "--grid", '{"fast": [5]}'],
        ["-v", "--workers=1", "sma_cross", "--data", "aaa.csv", "--grid", '{"fast": [5]}'],
    ],
    ids=["data-first", "workers-first", "common-option-then-workers"],
)
def test_options_of_a_sweep_may_come_before_the_strategy(
    tmp_path: Path, migrated: str, words: list[str]
) -> None:
    write_bars(tmp_path / "aaa.csv", 100)
    result = quantflow("sweep", *words, "--json", "--database-url", migrated, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["completed"] == 1


@pytest.mark.parametrize("option", ["--database-url", "--databa"], ids=["whole", "abbreviated"])
def test_a_common_option_before_resume_still_belongs_to_the_command(
    tmp_path: Path, migrated: str, option: str
) -> None:
    result = quantflow("sweep", option, migrated, "resume", "7", cwd=tmp_path)
    assert_one_line_mistake(result, "sweep with id=7 does not exist")


def test_a_file_of_one_bar_is_one_line_before_the_database_is_opened(tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_text("date,open,high,low,close\n2024-01-01,1,2,0.5,1\n")
    url = f"sqlite+aiosqlite:///{tmp_path / 'never.sqlite3'}"
    result = quantflow(
        "sweep", "sma_cross", "--data", "one.csv", "--grid", '{"fast": [5], "slow": [20]}',
        "--database-url", url, cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, "one.csv: one bar: a stored backtest needs a last bar")
    assert sorted(os.listdir(tmp_path)) == ["one.csv"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "No such file"), ("date,open,high,low\n2024-01-01,1,2,1\n", "column 'close'")],
    ids=["missing file", "missing column"],
)
def test_an_unreadable_bars_file_is_one_line_and_nothing_is_stored(
    tmp_path: Path, migrated: str, data: list[Path], content: str | None, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    if content is not None:
        bad.write_text(content)
    result = sweep(migrated, [*data, bad], "--grid", json.dumps(GRID), cwd=tmp_path)
    assert_one_line_mistake(result, message)
    assert stored(migrated) == (Counter(), 0)


def test_a_database_without_the_schema_says_to_migrate(tmp_path: Path, data: list[Path]) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    result = sweep(f"sqlite+aiosqlite:///{empty}", data, "--grid", json.dumps(GRID), cwd=tmp_path)
    assert_one_line_mistake(result, "quantflow migrate")


@pytest.mark.slow  # a sweep in a new process, Ctrl-C part way
def test_ctrl_c_mid_sweep_keeps_committed_fills_marks_the_rest_cancelled_and_leaves_no_process(
    tmp_path: Path, migrated: str
) -> None:
    long = [write_bars(tmp_path / f"long{i}.csv", 40_000) for i in range(2)]
    files = [arg for path in long for arg in ("--data", str(path))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    child = subprocess.Popen(
        [sys.executable, "-m", "quantflow_async.cli", "sweep", "sma_cross", *files,
         # 72 backtests: far longer than the wait for the first fill, even on a loaded machine
         "--grid", '{"fast": [2, 3, 4, 5, 6, 7], "slow": [8, 9, 10, 11, 12, 13]}',
         "--database-url", migrated],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )  # fmt: skip
    try:
        while stored(migrated)[1] == 0:  # pytest's timeout bounds this loop
            assert child.poll() is None, child.communicate()
            time.sleep(0.1)
        descendants = psutil.Process(child.pid).children(recursive=True)
        os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == "quantflow: error: interrupted"
    told = stderr.splitlines()[-2]
    assert re.fullmatch(
        r"sweep 1 stopped: \d+ of 72 backtests finished; "
        r"`quantflow sweep resume 1` runs the rest",
        told,
    ), stderr
    _, alive = psutil.wait_procs(descendants, timeout=10)
    assert alive == []
    statuses, trades = stored(migrated)
    assert set(statuses) <= {"completed", "cancelled"} and statuses["cancelled"] >= 1, statuses
    assert sum(statuses.values()) == 72
    assert trades > 0


def test_the_summary_counts_one_backtest_and_one_worker_in_the_singular(
    tmp_path: Path, migrated: str, data: list[Path]
) -> None:
    result = sweep(migrated, data[:1], "--grid", '{"fast": 3, "slow": 10}', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 backtest completed," in result.stderr
    assert "fills/s, 1 worker process)" in result.stderr

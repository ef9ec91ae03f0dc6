"""`quantflow sweep STRATEGY --search tpe|random ...`: a search stored as a sweep, resumed by
`quantflow sweep resume ID`, drawn by `quantflow sweep heatmap ID`; each mistake one line
before anything is stored."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.cli.test_cli_backtest import assert_one_line_mistake, migrated, quantflow, write_bars

__all__ = ["migrated"]  # the fixture, used by name

SPACE = json.dumps({"fast": {"int": [2, 12]}, "slow": {"int": [15, 60], "step": 5}})


def search(url: str, data: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return quantflow(
        "sweep", "sma_cross", "--search", "tpe", "--space", SPACE, "--data", str(data),
        "--constraint", "fast < slow", "--workers", "2", "--database-url", url, *args, cwd=cwd,
    )  # fmt: skip


def test_a_seeded_search_prints_its_sweep_and_best_trials_and_repeats_itself(
    tmp_path: Path, migrated: str
) -> None:
    data = write_bars(tmp_path / "goog.csv", 300)
    options = ("--trials", "4", "--maximize", "sharpe", "--seed", "3", "--json")
    first = search(migrated, data, *options, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    document = json.loads(first.stdout)
    assert (document["trials"], document["maximize"]) == (4, "sharpe")
    sharpes = [row["sharpe"] for row in document["best"]]
    assert len(sharpes) == 4 and sharpes == sorted(sharpes, reverse=True)
    second = json.loads(search(migrated, data, *options, cwd=tmp_path).stdout)
    assert second["sweep_id"] == document["sweep_id"] + 1
    assert [r["parameters"] for r in second["best"]] == [r["parameters"] for r in document["best"]]
    shown = quantflow(
        "sweeps", "show", str(document["sweep_id"]), "--json", "--database-url", migrated,
        cwd=tmp_path,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["kind"] == "search"


def test_a_search_whose_statistic_no_trial_has_says_it_could_not_rank_them(
    tmp_path: Path, migrated: str
) -> None:
    """Five hours of minute bars: no daily returns to make a Sharpe ratio of."""
    data = write_bars(tmp_path / "minutes.csv", 300, minutes=True)
    done = search(migrated, data, "--trials", "2", "--maximize", "sharpe", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (
        "no trial has a value of sharpe, so the search could not rank them: sharpe needs daily "
        "returns, over two days of bars or more (on a shorter file, search on return_pct)"
    ) in done.stderr


def test_minimize_ranks_the_lowest_first(tmp_path: Path, migrated: str) -> None:
    data = write_bars(tmp_path / "goog.csv", 300)
    done = search(
        migrated, data, "--search", "random", "--trials", "3", "--minimize", "max_drawdown_pct",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    values = [row["max_drawdown_pct"] for row in json.loads(done.stdout)["best"]]
    assert values == sorted(values)


def test_resume_of_a_finished_search_runs_no_trial(tmp_path: Path, migrated: str) -> None:
    data = write_bars(tmp_path / "goog.csv", 300)
    done = search(migrated, data, "--trials", "2", "--maximize", "sharpe", "--json", cwd=tmp_path)
    sweep_id = json.loads(done.stdout)["sweep_id"]
    again = quantflow(
        "sweep", "resume", str(sweep_id), "--json", "--database-url", migrated, cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["trials"] == 2
    listed = quantflow("backtests", "list", "--json", "--database-url", migrated, cwd=tmp_path)
    assert len(json.loads(listed.stdout)) == 2


def test_the_heatmap_of_a_search_is_drawn(tmp_path: Path, migrated: str) -> None:
    data = write_bars(tmp_path / "goog.csv", 300)
    done = search(migrated, data, "--trials", "4", "--maximize", "sharpe", "--json", cwd=tmp_path)
    sweep_id = json.loads(done.stdout)["sweep_id"]
    drawn = quantflow(
        "sweep", "heatmap", str(sweep_id), "-x", "fast", "-y", "slow", "--metric", "sharpe",
        "-o", "heat.png", "--database-url", migrated, cwd=tmp_path,
    )  # fmt: skip
    assert drawn.returncode == 0, drawn.stderr
    assert drawn.stdout.startswith(f"wrote heat.png: sweep {sweep_id}, sharpe over ")
    with Image.open(tmp_path / "heat.png") as image:
        assert image.format == "PNG"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--maximize", "sharp"), "--maximize: 'sharp' is not a stored statistic"),
        (("--minimize", "drawdwn"), "--minimize: 'drawdwn' is not a stored statistic"),
        (("--maximize", "sharpe", "--minimize", "sharpe"), "--maximize STAT or --minimize"),
        (("--trials", "0", "--maximize", "sharpe"), "--trials must be a whole number >= 1"),
        (("--maximize", "sharpe", "--grid", '{"fast": [3]}'), "give --grid for a grid, or"),
        (("--maximize", "sharpe", "--constraint", "fast < slw"), "no parameter named 'slw'"),
    ],
)
def test_a_mistake_in_a_search_is_one_line_and_nothing_is_stored(
    tmp_path: Path, migrated: str, args: tuple[str, ...], message: str
) -> None:
    data = write_bars(tmp_path / "goog.csv", 300)
    assert_one_line_mistake(search(migrated, data, *args, cwd=tmp_path), message)
    listed = quantflow("sweeps", "list", "--json", "--database-url", migrated, cwd=tmp_path)
    assert json.loads(listed.stdout) == []


@pytest.mark.parametrize(
    ("space", "constraint"),
    [
        ({"fast": {"int": [5, 50]}, "slow": {"int": [10, 40]}}, "fast < slow"),
        ({"fast": {"int": [2, 21]}}, None),  # slow keeps its default, 20
    ],
    ids=["corners-the-constraint-excludes", "corners-the-strategy-refuses"],
)
def test_a_space_whose_corners_are_not_all_runnable_is_searched(
    tmp_path: Path, migrated: str, space: dict[str, Any], constraint: str | None
) -> None:
    data = write_bars(tmp_path / "goog.csv", 300)
    kept = ("--constraint", constraint) if constraint else ()
    result = quantflow(
        "sweep", "sma_cross", "--search", "random", "--space", json.dumps(space), *kept,
        "--trials", "3", "--seed", "1", "--maximize", "return_pct", "--json",
        "--data", str(data), "--database-url", migrated, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["trials"] == 3


def test_a_space_the_strategy_takes_nowhere_is_its_first_refusal(
    tmp_path: Path, migrated: str
) -> None:
    data = write_bars(tmp_path / "goog.csv", 300)
    result = quantflow(
        "sweep", "sma_cross", "--search", "random", "--space",
        json.dumps({"fast": {"int": [30, 40]}, "slow": {"int": [10, 20]}}),
        "--maximize", "return_pct", "--data", str(data), "--database-url", migrated, cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, "slow: must be > fast (30), got 10")


def test_a_bad_space_is_one_line_naming_the_parameter(tmp_path: Path, migrated: str) -> None:
    data = write_bars(tmp_path / "goog.csv", 300)
    result = quantflow(
        "sweep", "sma_cross", "--search", "tpe", "--space", '{"fast": {"int": [12, 2]}}',
        "--maximize", "sharpe", "--data", str(data), "--database-url", migrated, cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, "space: fast: low 12 is above high 2")


def test_the_methods_the_command_lists_are_the_librarys() -> None:
    from quantflow_async.backtest.search import METHODS
    from quantflow_async.cli.sweep_search import METHODS as LISTED

    assert LISTED == METHODS


def _trials(url: str, sweep_id: int, cwd: Path) -> list[tuple[str, object]]:
    """The sweep's completed backtests: (parameters, return_pct)."""
    listed = quantflow("backtests", "list", "--json", "--database-url", url, cwd=cwd)
    return [
        (json.dumps(row["config"]["parameters"], sort_keys=True), row["metrics"]["return_pct"])
        for row in json.loads(listed.stdout)
        if row["sweep_id"] == sweep_id and row["status"] == "completed"
    ]


# `quantflow`, with its threads' stacks printed on SIGUSR1, for a run that does not stop.
STACKS_ON_SIGUSR1 = (
    "import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
    "from quantflow_async.cli.app import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.slow
def test_a_search_stopped_by_ctrl_c_and_resumed_ends_as_one_never_stopped(
    tmp_path: Path, migrated: str
) -> None:
    data = write_bars(tmp_path / "long.csv", 20_000)
    options = ("--trials", "12", "--maximize", "return_pct", "--seed", "5")
    whole = search(migrated, data, *options, "--json", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    whole_id = json.loads(whole.stdout)["sweep_id"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    child = subprocess.Popen(
        [sys.executable, "-c", STACKS_ON_SIGUSR1, "sweep", "sma_cross", "--search", "tpe",
         "--space", SPACE, "--data", str(data), "--constraint", "fast < slow", "--workers", "2",
         *options, "--database-url", migrated],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )  # fmt: skip
    stopped_id = whole_id + 1
    try:
        while len(_trials(migrated, stopped_id, tmp_path)) < 4:  # pytest's timeout bounds it
            assert child.poll() is None, child.communicate()
            time.sleep(0.1)
        os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            _, stderr = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGUSR1)  # every thread's stack, on its stderr
            time.sleep(1)
            os.killpg(child.pid, signal.SIGKILL)
            _, stderr = child.communicate()
            pytest.fail(f"the search did not exit within 60 s of its Ctrl-C:\n{stderr[-8000:]}")
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
    assert child.returncode == 130, stderr
    assert stderr.splitlines()[-1] == "quantflow: error: interrupted"
    assert len(_trials(migrated, stopped_id, tmp_path)) < 12
    resumed = quantflow(
        "sweep", "resume", str(stopped_id), "--json", "--database-url", migrated, cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    # A trial run again is stored after the others of its batch: the same trials, in any order.
    assert sorted(_trials(migrated, stopped_id, tmp_path)) == sorted(
        _trials(migrated, whole_id, tmp_path)
    )


@pytest.mark.parametrize(("direction", "best"), [("--maximize", max), ("--minimize", min)])
def test_a_terminal_shows_a_bar_of_trials_done_and_the_best_value_so_far(
    tmp_path: Path, migrated: str, direction: str, best: Any
) -> None:
    data = write_bars(tmp_path / "goog.csv", 300)
    terminal, child_end = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    child = subprocess.Popen(
        [sys.executable, "-c", STACKS_ON_SIGUSR1, "sweep", "sma_cross", "--search", "tpe",
         "--space", SPACE, "--data", str(data), "--constraint", "fast < slow", "--trials", "4",
         direction, "return_pct", "--seed", "2", "--json", "--database-url", migrated],
        cwd=tmp_path, env={**env, "COLUMNS": "120"}, stdout=subprocess.PIPE, stderr=child_end,
    )  # fmt: skip
    os.close(child_end)
    shown = b""
    while chunk := _read(terminal):
        shown += chunk
    stdout, _ = child.communicate(timeout=60)
    os.close(terminal)
    assert child.returncode == 0, shown
    text = shown.decode(errors="replace")
    values = [row["return_pct"] for row in json.loads(stdout)["best"]]
    assert "trials" in text and "4/4" in text
    assert f"best {best(values):,.4g}" in text


def _read(terminal: int) -> bytes:
    try:
        return os.read(terminal, 4096)
    except OSError:  # the child closed the terminal
        return b""


@pytest.mark.parametrize("option", [("--seed", "0"), ("--trials", "5"), ("--maximize", "sharpe")])
def test_an_option_of_a_search_on_a_grid_is_one_line(
    tmp_path: Path, migrated: str, option: tuple[str, str]
) -> None:
    data = write_bars(tmp_path / "goog.csv", 300)
    result = quantflow(
        "sweep", "sma_cross", "--grid", '{"fast": [3], "slow": [20]}', *option, "--data",
        str(data), "--database-url", migrated, cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_mistake(result, f"{option[0]} is an option of a search: add --search")


def test_neither_a_grid_nor_a_search_is_one_line(tmp_path: Path, migrated: str) -> None:
    data = write_bars(tmp_path / "goog.csv", 300)
    result = quantflow(
        "sweep", "sma_cross", "--data", str(data), "--database-url", migrated, cwd=tmp_path
    )
    assert_one_line_mistake(result, "give --grid JSON, or --search tpe|random with --space JSON")

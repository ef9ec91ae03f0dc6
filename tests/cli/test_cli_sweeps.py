"""`quantflow sweeps list|show`, `quantflow sweep resume` and `quantflow backtests delete`:
a stored sweep listed, shown, resumed and deleted from the command line, and each mistake a
line of its own."""

from __future__ import annotations

import json
import os
import pty
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from quantflow_async import Database
from tests.backtest.sweep_outcomes import assert_same_sweep, orphans, outcomes
from tests.cli.test_cli_backtest import assert_one_line_mistake, quantflow, write_bars
from tests.cli.test_cli_sigterm import assert_terminated, start, statuses, terminate
from tests.support.databases import migrated_sqlite

GRID = '{"fast": [3, 5, 8], "slow": [10, 20]}'


@pytest.fixture
def url(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path / "db.sqlite3")


def run(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return quantflow(*args, "--database-url", url, cwd=cwd)


def swept(url: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    """A sweep of 6 configs over goog.csv, its JSON document."""
    data = tmp_path / "goog.csv"
    if not data.exists():
        write_bars(data, 300)
    result = run(url, "sweep", "sma_cross", "--data", str(data), "--grid", GRID, "--json",
                 *args, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def stored_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A database holding one sweep of `swept`, made once for the tests that only read it or
    delete from it, each on a copy; its data file stays where it was swept."""
    folder = tmp_path_factory.mktemp("swept")
    document = swept(migrated_sqlite(folder / "db.sqlite3"), folder)
    assert not (folder / "db.sqlite3-wal").exists()  # every page is in the file itself
    return folder / "db.sqlite3", document


@pytest.fixture
def a_sweep(
    tmp_path: Path, stored_sweep: tuple[Path, dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """The URL of a copy of `stored_sweep`'s database, and its sweep's JSON document."""
    path, document = stored_sweep
    shutil.copyfile(path, tmp_path / "db.sqlite3")
    return f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}", document


def counts(url: str) -> tuple[int, int, int]:
    """Sweeps, backtests and trades stored."""
    with sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///")) as connection:
        return tuple(
            connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("sweeps", "backtests", "trades")
        )  # type: ignore[return-value]


def test_a_sweep_says_its_id_and_sweeps_list_counts_its_backtests(
    a_sweep: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    url, document = a_sweep
    listed = json.loads(run(url, "sweeps", "list", "--json", cwd=tmp_path).stdout)
    assert [(s["id"], s["status"], s["backtests"], s["counts"]) for s in listed] == [
        (document["sweep_id"], "completed", 6, {"completed": 6})
    ]
    assert listed[0]["datasets"][0]["name"] == "GOOG"
    table = run(url, "sweeps", "list", cwd=tmp_path)
    assert table.returncode == 0 and "sma_cross" in table.stdout


def test_sweeps_show_ranks_by_a_metric_and_counts_by_status(
    a_sweep: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    url, document = a_sweep
    sweep_id = document["sweep_id"]
    shown = json.loads(
        run(url, "sweeps", "show", str(sweep_id), "--by", "return_pct", "--top", "3", "--json",
            cwd=tmp_path).stdout
    )  # fmt: skip
    returns = [b["return_pct"] for b in shown["best"]]
    assert len(returns) == 3 and returns == sorted(returns, reverse=True)
    assert shown["counts"] == {"completed": 6} and shown["failures"] == []
    lowest = json.loads(
        run(url, "sweeps", "show", str(sweep_id), "--by", "return_pct", "--lowest", "--json",
            cwd=tmp_path).stdout
    )  # fmt: skip
    assert lowest["best"][0]["return_pct"] == min(b["return_pct"] for b in lowest["best"])
    by_sharpe = run(url, "sweeps", "show", str(sweep_id), "--by", "sharpe", cwd=tmp_path)
    header = next(line for line in by_sharpe.stdout.splitlines() if line.startswith("rank\t"))
    assert header.split("\t")[4:] == [
        "sharpe",
        "return_pct",
        "max_drawdown_pct",
        "win_rate_pct",
        "trades",
    ]  # the metric ranked by first, as in `sweep run`
    table = run(url, "sweeps", "show", str(sweep_id), cwd=tmp_path)
    assert table.returncode == 0 and "\nconstraint\t\n" in table.stdout
    assert table.stdout.count("fast=") == 6


FAILS_WHEN_TOLD = """\
from quantflow_async.backtest import Strategy


class FailsWhenTold(Strategy):
    fail: bool = False

    def next(self) -> None:
        if self.fail:
            raise RuntimeError("told to fail")
"""


def sweep_that_fails(url: str, tmp_path: Path, grid: str) -> int:
    """The id of a sweep of FailsWhenTold over `grid`, some of whose backtests failed."""
    (tmp_path / "fails.py").write_text(FAILS_WHEN_TOLD)
    data = write_bars(tmp_path / "goog.csv", 100)
    result = run(url, "sweep", "fails.py:FailsWhenTold", "--data", str(data), "--grid", grid,
                 "--json", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1 and "told to fail" in result.stderr
    return int(json.loads(result.stdout)["sweep_id"])


def test_sweeps_show_piped_leaves_out_the_failures_of_a_sweep_in_which_none_failed(
    a_sweep: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    url, document = a_sweep
    table = run(url, "sweeps", "show", str(document["sweep_id"]), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[-1].startswith("6\t")  # the last ranked backtest
    assert table.stderr == "no backtest of it failed\n"


def test_sweeps_show_piped_lists_the_failures_under_their_header(url: str, tmp_path: Path) -> None:
    sweep_id = sweep_that_fails(url, tmp_path, '{"fail": [false, true]}')
    table = run(url, "sweeps", "show", str(sweep_id), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    header, failure = table.stdout.splitlines()[-2:]
    assert header == "backtest\tdata\tparameters\terror"
    assert failure.endswith("\tGOOG\tfail=True\tRuntimeError: told to fail")


def test_sweeps_show_piped_leaves_out_the_ranking_of_a_sweep_in_which_none_completed(
    url: str, tmp_path: Path
) -> None:
    sweep_id = sweep_that_fails(url, tmp_path, '{"fail": [true]}')
    table = run(url, "sweeps", "show", str(sweep_id), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert not any(line.startswith("rank\t") for line in table.stdout.splitlines())
    assert table.stderr == "no backtest of it completed\n"


def test_sweeps_show_of_an_unknown_sweep_is_one_line(url: str, tmp_path: Path) -> None:
    assert_one_line_mistake(run(url, "sweeps", "show", "999", cwd=tmp_path), "sweep with id=999")


@pytest.mark.parametrize("name", ["sharpe; drop", "sharp"], ids=["not a name", "a typo"])
def test_sweeps_show_by_a_name_that_is_not_a_metric_is_one_line(
    a_sweep: tuple[str, dict[str, Any]], tmp_path: Path, name: str
) -> None:
    url, document = a_sweep
    sweep_id = document["sweep_id"]
    result = run(url, "sweeps", "show", str(sweep_id), "--by", name, cwd=tmp_path)
    assert_one_line_mistake(result, f"--by: {name!r} is not a stored statistic; one of ")


def test_resuming_a_completed_sweep_runs_nothing_again(
    a_sweep: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    url, first = a_sweep
    result = run(url, "sweep", "resume", str(first["sweep_id"]), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout)
    assert (again["skipped"], again["completed"], again["fills_stored"]) == (6, 6, 0)
    assert again["backtest_ids"] == first["backtest_ids"]
    assert counts(url)[1] == 6


def test_resuming_after_the_data_file_changed_is_one_line(url: str, tmp_path: Path) -> None:
    sweep_id = swept(url, tmp_path)["sweep_id"]
    write_bars(tmp_path / "goog.csv", 301)
    result = run(url, "sweep", "resume", str(sweep_id), cwd=tmp_path)
    assert_one_line_mistake(result, f"changed since sweep {sweep_id} ran")


def test_resuming_an_unknown_sweep_is_one_line(url: str, tmp_path: Path) -> None:
    assert_one_line_mistake(run(url, "sweep", "resume", "999", cwd=tmp_path), "sweep with id=999")


def test_deleting_a_sweep_deletes_its_backtests_and_fills(url: str, tmp_path: Path) -> None:
    sweep_id = swept(url, tmp_path)["sweep_id"]
    kept = swept(url, tmp_path)["sweep_id"]
    _, backtests, trades = counts(url)
    result = run(url, "backtests", "delete", "--sweep", str(sweep_id), "--yes", "--json",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    deleted = json.loads(result.stdout)
    assert deleted == {"backtests": 6, "fills": trades // 2, "sweep": sweep_id}
    assert counts(url) == (1, backtests - 6, trades - deleted["fills"])
    listed = json.loads(run(url, "sweeps", "list", "--json", cwd=tmp_path).stdout)
    assert [s["id"] for s in listed] == [kept]


def test_deleting_backtests_by_id_takes_their_fills(
    a_sweep: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    url, document = a_sweep
    ids = document["backtest_ids"]
    result = run(url, "backtests", "delete", str(ids[0]), str(ids[1]), "--yes", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("deleted 2 backtests and their ")
    assert counts(url)[1] == 4
    with sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///")) as connection:
        (stray,) = connection.execute(
            f"SELECT count(*) FROM trades WHERE backtest_id IN ({ids[0]}, {ids[1]})"
        ).fetchone()
    assert stray == 0


def test_backtests_list_takes_a_sweep(a_sweep: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    url, document = a_sweep
    listed = run(url, "backtests", "list", "--sweep", str(document["sweep_id"]), "--json",
                 cwd=tmp_path)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert [b["id"] for b in json.loads(listed.stdout)] == document["backtest_ids"]
    missing = run(url, "backtests", "list", "--sweep", "99", cwd=tmp_path)
    assert_one_line_mistake(missing, "sweep with id=99 does not exist")


def test_answering_no_on_a_terminal_deletes_nothing_and_is_no_error(
    a_sweep: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    url, document = a_sweep
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "quantflow_async.cli", "backtests", "delete",
             str(document["backtest_ids"][0]), "--database-url", url],
            cwd=tmp_path, stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        os.write(controller, b"n\n")
        out, err = process.communicate(timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)
    assert process.returncode == 0, err
    assert err.decode().endswith("delete 1 backtest and its 81 fills? [y/N] nothing deleted\n")
    assert counts(url)[1] == 6


def test_an_unknown_id_deletes_nothing(a_sweep: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    url, document = a_sweep
    ids = document["backtest_ids"]
    result = run(url, "backtests", "delete", str(ids[0]), "999", "--yes", cwd=tmp_path)
    assert_one_line_mistake(result, "backtest with id=999")
    assert counts(url)[1] == 6


def test_nothing_to_delete_is_one_line(a_sweep: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    url, document = a_sweep
    result = run(url, "backtests", "delete", "--status", "failed", "--yes", cwd=tmp_path)
    assert_one_line_mistake(result, "nothing to delete: no backtest is failed")
    sweep = document["sweep_id"]
    both = ("--sweep", str(sweep), "--status", "failed", "--yes")
    result = run(url, "backtests", "delete", *both, cwd=tmp_path)
    assert_one_line_mistake(result, f"nothing to delete: no backtest of sweep {sweep} is failed")


def test_an_unknown_status_is_one_line(url: str, tmp_path: Path) -> None:
    result = run(url, "backtests", "delete", "--status", "finished", "--yes", cwd=tmp_path)
    assert_one_line_mistake(result, "invalid choice: 'finished'")


def test_an_unknown_sweep_deletes_nothing(
    a_sweep: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    url, _ = a_sweep
    result = run(url, "backtests", "delete", "--sweep", "999", "--yes", cwd=tmp_path)
    assert_one_line_mistake(result, "sweep with id=999")
    assert counts(url) == (1, 6, counts(url)[2])


def test_without_yes_and_without_a_terminal_nothing_is_deleted(
    a_sweep: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    url, document = a_sweep
    ids = document["backtest_ids"]
    result = run(url, "backtests", "delete", str(ids[0]), cwd=tmp_path)
    assert_one_line_mistake(result, "refusing to delete without --yes")
    assert counts(url)[1] == 6


def test_ids_and_a_sweep_together_are_one_line(url: str, tmp_path: Path) -> None:
    result = run(url, "backtests", "delete", "1", "--sweep", "1", "--yes", cwd=tmp_path)
    assert_one_line_mistake(result, "not both")
    result = run(url, "backtests", "delete", "--yes", cwd=tmp_path)
    assert_one_line_mistake(result, "name backtest IDs, or --sweep ID")


@pytest.mark.slow
async def test_a_sweep_stopped_by_sigterm_and_resumed_equals_one_never_stopped(
    url: str, tmp_path: Path
) -> None:
    data = write_bars(tmp_path / "long.csv", 20_000)
    grid = '{"fast": [2, 3, 4, 5, 6, 7], "slow": [8, 9, 10, 11, 12, 13]}'
    args = ("sweep", "sma_cross", "--data", str(data), "--grid", grid, "--database-url", url)
    child = start(tmp_path, *args)
    status, stderr = terminate(child, lambda: statuses(url)["completed"] >= 3)
    assert_terminated(status, stderr)
    assert 3 <= statuses(url)["completed"] < 36

    resumed = quantflow("sweep", "resume", "1", "--json", "--database-url", url, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["completed"] == 36
    assert quantflow(*args, cwd=tmp_path).returncode == 0  # sweep 2, never stopped

    async with Database(url) as db:
        assert_same_sweep(await outcomes(db, 1), await outcomes(db, 2))
        assert await orphans(db) == {"unfinished backtests": 0, "fills of unfinished": 0}

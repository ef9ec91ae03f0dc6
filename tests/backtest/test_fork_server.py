"""The fork server `quantflow sweep` warms: the processes it forks start as spawned sweep
workers do (SIGINT ignored, the main process's environment and working directory, the
standard library's modules whatever the folder holds, numpy's generator seeded afresh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CHILD = Path(__file__).with_name("fork_server_child.py")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no fork server on Windows")


def forked_states(cwd: Path, *options: str, **variables: str) -> dict[str, Any]:
    # Run by its path, so that only the processes the server forks could meet the folder's
    # modules (`python -m` would put the folder first on the program's own path).
    env = {**_without_safe_path(), **variables}
    done = subprocess.run(
        [sys.executable, str(CHILD), *options],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def _without_safe_path() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}


def test_forked_processes_start_as_spawned_workers_do(tmp_path: Path) -> None:
    # A module in the working directory named like one of the standard library's (`python
    # -c`, how the server starts, would put the folder first on its path).
    (tmp_path / "queue.py").write_text("# not the standard library's\n")
    result = forked_states(tmp_path)
    assert result["start_method"] == "forkserver"
    for state in result["states"]:
        assert state["sigint_ignored"]  # Ctrl-C is the main process's to handle
        assert state["environment"] == {}  # the safe path was the server's alone
        assert state["cwd"] == str(tmp_path)
        assert state["queue"] and not state["queue"].startswith(str(tmp_path))


def test_numpy_loaded_by_the_server_is_seeded_afresh_in_each_worker(tmp_path: Path) -> None:
    states = forked_states(tmp_path, "--numpy-random")["states"]
    # The fault the reseed is for: forked with numpy.random loaded, both draw the same.
    assert states[0]["inherited_draw"] == states[1]["inherited_draw"]
    assert states[0]["draw"] != states[1]["draw"]


def test_a_server_that_cannot_start_leaves_the_workers_to_spawn(tmp_path: Path) -> None:
    # Its socket goes in the temporary folder: past about 100 characters, AF_UNIX refuses.
    deep = tmp_path / ("t" * 100) / ("u" * 100)
    deep.mkdir(parents=True)
    result = forked_states(tmp_path, TMPDIR=str(deep))
    assert result["start_method"] == "spawn"
    assert [state["cwd"] for state in result["states"]] == [str(tmp_path)] * 2


def test_a_server_warmed_from_a_thread_other_than_the_main_one_starts_all_the_same(
    tmp_path: Path,
) -> None:
    result = forked_states(tmp_path, "--from-a-thread")
    assert result["start_method"] == "forkserver"
    assert [state["environment"] for state in result["states"]] == [{}, {}]

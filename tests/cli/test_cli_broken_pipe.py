"""A reader that goes away (`quantflow ... | head -1`) ends the command quietly, as with other
Unix tools: no error message, no traceback, the status of a process ended by SIGPIPE."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def test_a_closed_stdout_ends_the_command_quietly(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: every write fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "quantflow_async.cli", "bars", "synth", "-o",
             str(tmp_path / "b.csv"), "--count", "10"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 128 + signal.SIGPIPE

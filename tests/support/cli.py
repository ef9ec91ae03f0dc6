"""`quantflow` run inside the test's process, seen as a subprocess would be seen.

The command's entry point, `main(argv)`, runs with the working directory, environment,
stdout and stderr the call gives it, and answers with the exit status and both streams, as
`subprocess.run` does. A test pays for the command's work, not for starting Python and
importing the package again. What only a real process shows (a terminal, signals, a closed
pipe, the import cost) stays with the tests that start one.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from subprocess import CompletedProcess

from quantflow_async.cli import main


def quantflow(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> CompletedProcess[str]:
    """`quantflow ARGS` in `cwd` with `env` (default: this process's environment)."""
    argv = list(args)
    result: list[CompletedProcess[str]] = []

    def call() -> None:
        result.append(_run(argv, cwd, env))

    if _in_a_running_loop():
        # `main` runs its own event loop, which cannot start inside the test's: it gets a
        # thread of its own, and the test waits for it as it would wait for a subprocess.
        thread = threading.Thread(target=call, name="quantflow")
        thread.start()
        thread.join()
    else:
        call()
    return result[0]


def quantflow_process(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> CompletedProcess[str]:
    """`quantflow ARGS` as a user runs it: a new Python process."""
    return subprocess.run(
        [sys.executable, "-m", "quantflow_async.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _in_a_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run(argv: list[str], cwd: Path, env: Mapping[str, str] | None) -> CompletedProcess[str]:
    stdout, stderr = _stream(), _stream()
    with (
        _working_directory(cwd),
        _environment(env),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
        _fresh_logging(),
    ):
        status = _exit_status(argv)
        stdout.flush()
        stderr.flush()
    return CompletedProcess(["quantflow", *argv], status, _text_of(stdout), _text_of(stderr))


def _exit_status(argv: list[str]) -> int:
    """What the process would exit with: `main`'s status, SystemExit's, 1 after a traceback."""
    try:
        return main(argv)
    except SystemExit as exit:
        if exit.code is None or isinstance(exit.code, int):
            return exit.code or 0
        print(exit.code, file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        return 1


def _stream() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="\n", write_through=True)


def _text_of(stream: io.TextIOWrapper) -> str:
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode()


@contextlib.contextmanager
def _working_directory(cwd: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    """`env` in place of os.environ (the same object: whatever holds it sees the change)."""
    before = dict(os.environ)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


@contextlib.contextmanager
def _fresh_logging() -> Iterator[None]:
    """The root logger as a new process has it, so `-v` configures it as it would there."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for added in root.handlers:
            added.close()
        root.handlers[:] = handlers
        root.setLevel(level)

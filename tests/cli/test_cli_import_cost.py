"""`quantflow --help` and every command's `--help` load neither the database, numpy, the
analysis stack nor asyncio: only the command that runs imports what it runs on."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantflow_async.cli.app import COMMANDS, Parser, _add_commands, build_parser

HEAVY = (
    "sqlalchemy", "numpy", "pandas", "matplotlib", "pyarrow", "ccxt", "aiohttp", "asyncpg",
    "aiosqlite", "asyncio",
)  # fmt: skip

# Every command and verb of `quantflow`, as `quantflow help` and each group's help list them.
COMMAND_LINES = (
    "help",
    "migrate",
    "count-trades",
    "strategies",
    "strategies list",
    "strategies show",
    "strategies available",
    "strategies create",
    "backtests",
    "backtests list",
    "backtests show",
    "backtests delete",
    "backtest",
    "backtest run",
    "sweep",
    "sweep run",
    "sweep resume",
    "sweep heatmap",
    "sweeps",
    "sweeps list",
    "sweeps show",
    "trades",
    "trades list",
    "trades export",
    "orders",
    "orders list",
    "orders show",
    "positions",
    "report",
    "bars",
    "bars synth",
    "venue",
    "venue serve",
    "live",
    "live run",
)


def heavy_modules_after_help(*words: str) -> list[str]:
    """The heavy modules loaded once `quantflow WORDS... --help` has printed its help."""
    code = (
        "import sys\n"
        "from quantflow_async.cli.app import main\n"
        "try:\n"
        f"    main({[*words, '--help']!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "usage: quantflow" in done.stdout, done.stdout
    return done.stdout.splitlines()[-1].split()[1:]


def test_quantflow_help_as_a_user_runs_it_imports_nothing_heavy() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "quantflow_async.cli", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "usage: quantflow" in done.stdout
    imported = {line.rpartition("|")[2].strip() for line in done.stderr.splitlines()}
    assert sorted(imported & set(HEAVY)) == []


def test_quantflow_help_imports_nothing_heavy() -> None:
    assert heavy_modules_after_help() == []


def command_lines(parser: Parser, words: tuple[str, ...] = ()) -> Iterator[str]:
    """Every command and verb `parser` accepts, each group before its verbs."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action._name_parser_map.items():
                yield " ".join((*words, name))
                yield from command_lines(command, (*words, name))


def test_every_command_of_quantflow_is_checked() -> None:
    assert [line for line in COMMAND_LINES if " " not in line] == ["help", *COMMANDS]


def test_every_verb_of_every_command_is_checked() -> None:
    parser = build_parser()
    _add_commands(parser, list(COMMANDS))  # every command in full, as if each were named
    assert list(command_lines(parser)) == list(COMMAND_LINES)


@pytest.mark.parametrize("command_line", COMMAND_LINES)
def test_a_commands_help_imports_nothing_heavy(command_line: str) -> None:
    assert heavy_modules_after_help(*command_line.split()) == []


def test_running_a_command_still_imports_what_it_runs_on(tmp_path: Path) -> None:
    """The checks above can fail: a command that opens the database does load SQLAlchemy."""
    code = (
        "import sys\n"
        "from quantflow_async.cli.app import main\n"
        "main(['--database-url', 'sqlite+aiosqlite:///./absent.sqlite3', 'count-trades'])\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["True"]

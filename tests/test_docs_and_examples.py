"""The README's quick start and the example script run as written; the first run has no surprise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from quantflow_async.cli import main as quantflow

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"the README has no section {title!r}"
    return match.group(1)


def run_quick_start(folder: Path) -> subprocess.CompletedProcess[str]:
    match = re.search(r"```python\n(.*?)```", section("Quick start"), re.S)
    assert match, "the README has no quick start"
    script = folder / "quickstart.py"
    script.write_text(match.group(1))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder)}  # no QUANTFLOW_DATABASE_URL
    return subprocess.run(
        [sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    result = run_quick_start(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "42000.10"]
    assert (tmp_path / "dev.sqlite3").exists()


def test_readme_quick_start_runs_twice_on_one_database(tmp_path: Path) -> None:
    first, second = run_quick_start(tmp_path), run_quick_start(tmp_path)
    assert second.returncode == 0, second.stderr
    assert first.stdout.split() == second.stdout.split() == ["1", "42000.10"]


def test_readme_says_where_the_commands_live_before_running_them() -> None:
    text = section("Two commands")
    assert text.index(".venv/bin") < text.index("./scripts/demo")
    migrations = section("Migrations")
    assert migrations.index(".venv/bin") < migrations.index("quantflow migrate ")


def test_readme_warns_before_the_downgrade_that_deletes_every_row() -> None:
    text = section("Migrations")
    command = re.search(r"^alembic downgrade base", text, re.M)
    assert command, "the Migrations section shows no `alembic downgrade base`"
    assert "deletes every row" in text[: command.start()]


def test_the_setup_script_shows_pip_progress_and_names_each_step() -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    installs = [line for line in bootstrap.splitlines() if "pip install" in line]
    assert installs and not any(" -q" in line or "--quiet" in line for line in installs)
    for script in ("demo", "test"):
        lines = [line for line in (ROOT / "scripts" / script).read_text().splitlines() if line]
        commands = [
            n for n, line in enumerate(lines) if re.match(r"(quantflow|python|ruff|mypy)", line)
        ]
        assert commands, script
        assert all(lines[n - 1].startswith("step ") for n in commands), script


def test_the_quick_benchmark_output_is_ignored_by_git() -> None:
    written = ROOT / "benchmarks" / "results" / "ingest-quick.json"  # what --quick writes
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", str(written.relative_to(ROOT))], cwd=ROOT
    )
    assert result.returncode == 0


def test_ingest_example_stores_what_it_reports(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'example.sqlite3'}"
    assert quantflow(["--database-url", url, "migrate"]) == 0
    example = ROOT / "examples" / "ingest_fills.py"
    command = [sys.executable, str(example), "--fills", "4000", "--database-url", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "4,000 fills in" in result.stdout
    assert "trades stored in all: 4,000" in result.stdout


@pytest.mark.slow  # the example script ingests for seconds in a new process
def test_ingest_example_reports_progress_while_it_ingests(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'example.sqlite3'}"
    assert quantflow(["--database-url", url, "migrate"]) == 0
    example = ROOT / "examples" / "ingest_fills.py"
    command = [sys.executable, str(example), "--fills", "120000", "--database-url", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("ingesting 120,000 fills from 4 producers")
    assert any(line.endswith("fills/s)") and "of 120,000 fills committed" in line for line in lines)
    assert "summing the backtest's trades per symbol" in result.stdout

"""The README's quick start and the example script run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from quantflow_async.cli import main as quantflow

ROOT = Path(__file__).resolve().parents[1]


def test_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"## Quick start\n\n```python\n(.*?)```", readme, re.S)
    assert match, "the README has no quick start"
    script = tmp_path / "quickstart.py"
    script.write_text(match.group(1))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no QUANTFLOW_DATABASE_URL
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "42000.10"]
    assert (tmp_path / "dev.sqlite3").exists()


def test_ingest_example_stores_what_it_reports(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'example.sqlite3'}"
    assert quantflow(["--database-url", url, "migrate"]) == 0
    example = ROOT / "examples" / "ingest_fills.py"
    command = [sys.executable, str(example), "--fills", "4000", "--database-url", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "4,000 fills" in result.stdout
    assert "trades stored in all: 4,000" in result.stdout

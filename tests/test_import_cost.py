"""Importing the package is cheap: its public names load their modules when first used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlalchemy", "numpy", "aiosqlite", "alembic", "asyncpg", "ccxt", "aiohttp", "pandas")


def loaded_after(code: str) -> list[str]:
    probe = f"{code}; import sys; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split()


def test_importing_the_package_loads_no_database_or_numeric_library() -> None:
    assert loaded_after("import quantflow_async") == []


def test_the_errors_load_without_the_database() -> None:
    assert loaded_after("from quantflow_async import NotFound, OrderEventRefused") == []


def test_a_public_name_loads_its_module_when_used() -> None:
    assert "sqlalchemy" in loaded_after("from quantflow_async import Database")

"""Benchmark: migrations on a database that already holds a million trades.

    python benchmarks/migrate.py [--fills 1000000]

Times, on SQLite: `db.migrate()` at head (what every start-up that migrates pays); a revision
that rebuilds the `backtests` table (a parent of every trade) in batch mode; and one that
rebuilds `trades` itself. After each, every trade is checked to be there, unchanged.
Prints a table and writes benchmarks/results/migrate.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from _common import fresh_database, print_table, synthetic_fills, write_json
from alembic import command
from sqlalchemy import Connection

from quantflow_async import Database
from quantflow_async.store.migrations import alembic_config, script_location

REVISIONS = {
    "901_rebuild_backtests.py": ("901", "003", "backtests", "name", "sa.String(200)"),
    "902_rebuild_trades.py": ("902", "901", "trades", "symbol", "sa.String(64)"),
}

TEMPLATE = """
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("{table}", recreate="always") as batch:
        batch.alter_column("{column}", existing_type={type}, nullable=False)


def downgrade() -> None:
    pass
"""


def scripts_with_rebuilds(folder: Path) -> Path:
    scripts = folder / "alembic"
    shutil.copytree(script_location(), scripts, ignore=shutil.ignore_patterns("__pycache__"))
    for name, (revision, down, table, column, type_) in REVISIONS.items():
        text = TEMPLATE.format(revision=revision, down=down, table=table, column=column, type=type_)
        (scripts / "versions" / name).write_text(text)
    return scripts


async def upgrade(db: Database, scripts: Path, revision: str) -> float:
    config = alembic_config()
    config.set_main_option("script_location", str(scripts))

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    started = time.perf_counter()
    async with db.engine.connect() as connection:
        await connection.run_sync(run)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=1_000_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="quantflow-migrate-"))
    url = f"sqlite+aiosqlite:///{folder / 'full.sqlite3'}"
    strategy_id, backtest_id = await fresh_database(url)
    scripts = scripts_with_rebuilds(folder)
    rows = []
    async with Database(url) as db:
        async with db.writer(batch_size=5000) as writer:
            await writer.submit_many(synthetic_fills(args.fills, strategy_id, backtest_id))
        before = await db.trades.summary()

        async def kept() -> str:
            count = await db.trades.count(backtest_id=backtest_id)
            same = count == args.fills and await db.trades.summary() == before
            return f"{count:,} trades, {'unchanged' if same else 'CHANGED'}"

        started = time.perf_counter()
        await db.migrate()
        rows.append(
            ("db.migrate() at head (no-op)", f"{time.perf_counter() - started:.3f} s", await kept())
        )
        seconds = await upgrade(db, scripts, "901")
        rows.append(("rebuild backtests (parent of every trade)", f"{seconds:.2f} s", await kept()))
        seconds = await upgrade(db, scripts, "902")
        rows.append((f"rebuild trades ({args.fills:,} rows)", f"{seconds:.2f} s", await kept()))
    shutil.rmtree(folder)
    print_table(
        f"Migrations on a SQLite database holding {args.fills:,} trades",
        ["migration", "time", "after it"],
        rows,
    )
    write_json("migrate", {"fills": args.fills, "rows": rows})


if __name__ == "__main__":
    asyncio.run(main())

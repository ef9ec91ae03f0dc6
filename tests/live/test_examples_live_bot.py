"""examples/live_bot.py, run as a user runs it: it kills its bot with SIGKILL mid-order, restarts
it, shows what reconciliation found, and leaves a journal that agrees with the exchange and no
process behind, also when Ctrl-C stops it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from sqlalchemy import func, select

from quantflow_async import Database, Settings
from quantflow_async.order_records import Order
from quantflow_async.store.schema import trades

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "live_bot.py"
KILLED = re.compile(
    r"^killing the bot \(SIGKILL\) while it has (\d+) open orders and (\d+) orders? in flight$",
    re.M,
)
FOUND = re.compile(r"^  bot \|   acknowledged \d+, never sent \d+, fills recorded (\d+)", re.M)
ROW = re.compile(r"^  bot \| #\d+ +\w+ +\w+ +(\w+) +([\d.]+) +(\w+|never got it) *([\d.]*)$", re.M)
POSITION = re.compile(
    r"^  bot \| position: (\S+) BTC in the journal, (\S+) BTC at the exchange$", re.M
)


@dataclass
class Run:
    returncode: int
    seconds: float
    stdout: str
    stderr: str
    children: list[psutil.Process]
    """Every process the example started that was seen while it ran."""


def run_example(cwd: Path, database_url: str | None, *, interrupt_at: str | None = None) -> Run:
    """The example with no arguments in `cwd` (its temporary folder under cwd/tmp); with
    `interrupt_at`, Ctrl-C to its process group once a line of its output contains that."""
    (cwd / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    env["TMPDIR"] = str(cwd / "tmp")
    if database_url is not None:
        env["QUANTFLOW_DATABASE_URL"] = database_url
    started = time.monotonic()
    with (cwd / "stderr.txt").open("w+") as errors:
        example = subprocess.Popen(
            [sys.executable, str(SCRIPT)], cwd=cwd, env=env, stdout=subprocess.PIPE,
            stderr=errors, text=True, start_new_session=True,
        )  # fmt: skip
        assert example.stdout is not None
        seen: dict[int, psutil.Process] = {}
        lines: list[str] = []
        try:
            for line in example.stdout:
                lines.append(line)
                try:
                    seen.update((p.pid, p) for p in psutil.Process(example.pid).children(True))
                except psutil.NoSuchProcess:
                    pass
                if interrupt_at is not None and interrupt_at in line:
                    os.killpg(example.pid, signal.SIGINT)
                    interrupt_at = None
            example.wait(timeout=60)
        finally:
            if example.poll() is None:
                os.killpg(example.pid, signal.SIGKILL)
                example.wait()
            example.stdout.close()
        errors.seek(0)
        stderr = errors.read()
    seconds = time.monotonic() - started
    return Run(example.returncode, seconds, "".join(lines), stderr, list(seen.values()))


def leftovers(run: Run, cwd: Path) -> list[str]:
    """Processes of the run still alive: one it started, or one naming its temporary folder or
    its exchange's address."""
    url = re.search(r"paper exchange on (http://\S+),", run.stdout)
    marks = [str(cwd / "tmp"), *([url.group(1)] if url else [])]
    alive = [f"{p.pid} (started by the example)" for p in run.children if p.is_running()]
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(process.info["cmdline"] or ())
        if any(mark in command for mark in marks):
            alive.append(f"{process.info['pid']}: {command}")
    return alive


def stored_journal(database_url: str) -> tuple[list[Order], int, int]:
    """The orders of strategy "live-bot-demo", its stored trades, and those with no order."""

    async def read() -> tuple[list[Order], int, int]:
        async with Database(settings=Settings(database_url=database_url)) as db:
            strategy = await db.strategies.get_by_name("live-bot-demo")
            orders = await db.orders.list(strategy_id=strategy.id)
            count = select(func.count()).select_from(trades)
            mine = count.where(trades.c.strategy_id == strategy.id)
            async with db.engine.connect() as conn:
                stored = await conn.scalar(mine)
                orphans = await conn.scalar(mine.where(trades.c.order_id.is_(None)))
            return orders, stored or 0, orphans or 0

    return asyncio.run(read())


def test_the_example_kills_and_restarts_its_bot_and_the_journal_ends_level_with_the_exchange(
    tmp_path: Path, database_url: str
) -> None:
    run = run_example(tmp_path, database_url)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.seconds < 60
    assert "Traceback" not in run.stderr, run.stderr
    killed = KILLED.search(run.stdout)
    assert killed is not None, run.stdout
    restarted = run.stdout[killed.end() :]
    assert "reconciliation found:" in restarted
    assert FOUND.search(restarted), restarted
    # The restarted bot's table: each order as the journal and as the exchange hold it.
    rows = ROW.findall(restarted)
    assert rows, restarted
    for status, filled, their_status, their_filled in rows:
        if their_status == "never got it":
            assert status == "rejected"
        else:
            assert (status, filled) == (their_status, their_filled)
    position = POSITION.search(restarted)
    assert position is not None and position.group(1) == position.group(2), restarted

    orders, stored, orphans = stored_journal(database_url)
    assert len(orders) == len(rows) and stored
    assert [o for o in orders if o.status in ("intended", "submitted", "unknown")] == []
    assert orphans == 0  # every stored trade names its order
    assert len(run.children) >= 2  # the exchange and the bot, at least
    assert leftovers(run, tmp_path) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_ctrl_c_ends_the_example_with_no_traceback_and_no_process_left(tmp_path: Path) -> None:
    run = run_example(tmp_path, None, interrupt_at="| fill ")
    assert run.returncode == 128 + signal.SIGINT, run.stdout + run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stdout.rstrip().endswith("interrupted: the bot and the exchange are stopped")
    assert (tmp_path / "dev.sqlite3").exists()  # no arguments: ./dev.sqlite3, as the others
    assert len(run.children) >= 2
    assert leftovers(run, tmp_path) == []
    assert list((tmp_path / "tmp").iterdir()) == []

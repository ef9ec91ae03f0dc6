"""`quantflow live run` as a user runs it: a stop by SIGTERM or Ctrl-C exits 0 with the journal
flushed (and our open orders cancelled when asked), and each mistake is one line."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from quantflow_async import Database, Settings
from quantflow_async.errors import VenueRejected
from quantflow_async.live.ccxt_venue import CcxtVenue
from quantflow_async.live.credentials import VenueCredentials
from quantflow_async.live.order_flow import send_order
from quantflow_async.live.orders import OrderRequest
from quantflow_async.live.paper.rejections import INSUFFICIENT_BALANCE
from tests.support.paper import PaperProcess, paper_process, write_bars
from tests.support.walks import random_walk

SYMBOL = "BTCUSDT"


def live_command(url: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "quantflow_async.cli", "live", "run", "sma_cross",
        "--venue", url, "--symbol", SYMBOL, "--config", '{"fast": 3, "slow": 8}', *extra,
    ]  # fmt: skip


def environment(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    env["QUANTFLOW_DATABASE_URL"] = database_url
    return env


@pytest.fixture
def exchange(tmp_path: Path) -> PaperProcess:
    bars = write_bars(tmp_path / "bars.csv", random_walk(2_000, seed=5))
    with paper_process(bars, tmp_path / "exchange.sqlite3", extra=["--bar-seconds", "0.1"]) as p:
        yield p  # type: ignore[misc]


async def _migrated_with_a_resting_order(database_url: str, url: str) -> str:
    """A stored strategy "sma_cross" with one buy limit far below the price, on venue "paper"."""
    async with Database(settings=Settings(database_url=database_url)) as db:
        await db.migrate()
        strategy = await db.strategies.create(name="sma_cross")
        venue = CcxtVenue.connect(url, VenueCredentials.placeholder(), name="paper")
        try:
            async with db.journal(strategy_id=strategy.id, venue="paper") as journal:
                request = OrderRequest(
                    symbol=SYMBOL, side="buy", quantity=Decimal(1), type="limit",
                    limit_price=Decimal("1.00"),
                )  # fmt: skip
                order = await send_order(journal, venue, request)
        finally:
            await venue.aclose()
    assert order.status == "open"
    return order.client_order_id


async def _order_status(database_url: str, cid: str) -> str:
    async with Database(settings=Settings(database_url=database_url)) as db:
        return (await db.orders.get_by_client_order_id(cid)).status


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_cancels_open_orders_flushes_and_exits_0(
    exchange: PaperProcess, sqlite_url: str, signum: int
) -> None:
    cid = asyncio.run(_migrated_with_a_resting_order(sqlite_url, exchange.url))
    process = subprocess.Popen(
        live_command(exchange.url, "--venue-name", "paper", "--cancel-on-exit", "--json"),
        env=environment(sqlite_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_until_reconciled(sqlite_url)
    time.sleep(1)  # deciding
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["orders_cancelled_on_exit"] == 1
    assert report["stopped_by"] == "stop"
    assert asyncio.run(_order_status(sqlite_url, cid)) == "cancelled"


def test_a_stop_signal_stops_a_runner_whose_stderr_reader_is_gone(
    exchange: PaperProcess, sqlite_url: str
) -> None:
    # A bot whose log pipe lost its reader (a log shipper that died, a closed terminal under
    # nohup): writing to stderr fails, and SIGTERM must stop it all the same. It kept running
    # before: the "stopping" line raised BrokenPipeError ahead of setting the stop.
    cid = asyncio.run(_migrated_with_a_resting_order(sqlite_url, exchange.url))
    process = subprocess.Popen(
        live_command(exchange.url, "--venue-name", "paper", "--cancel-on-exit", "--json"),
        env=environment(sqlite_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until_reconciled(sqlite_url)
        assert process.stderr is not None
        process.stderr.close()
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
        assert process.returncode == 0
        report = json.loads(out)
        assert report["stopped_by"] == "stop"
        assert report["orders_cancelled_on_exit"] == 1
        assert asyncio.run(_order_status(sqlite_url, cid)) == "cancelled"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_paper_account_names_the_venue_in_the_journal(
    exchange: PaperProcess, sqlite_url: str
) -> None:
    asyncio.run(_migrated_with_a_resting_order(sqlite_url, exchange.url))
    done = subprocess.run(
        live_command(exchange.url, "--bars", "1", "--json"),
        env=environment(sqlite_url), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    venue = json.loads(done.stdout)["venue"]
    assert venue.startswith("paper-") and venue[len("paper-") :].isdigit()


@pytest.mark.slow  # a live run in a new process, against a paper exchange of its own
def test_the_summary_says_in_words_why_the_run_stopped(
    exchange: PaperProcess, sqlite_url: str
) -> None:
    asyncio.run(_migrated_with_a_resting_order(sqlite_url, exchange.url))
    done = subprocess.run(
        live_command(exchange.url, "--bars", "1"),
        env=environment(sqlite_url), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].endswith("; stopped after --bars bars")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--api-key", "k"], "--api-key and --api-secret go together"),
        (["--poll", "0"], "poll_interval: must be a number in"),
        (["--commission", "2"], "commission: must be a number in"),
        (["--symbol", "BTC"], "symbol"),
    ],
)
def test_a_bad_option_is_one_line_before_anything_runs(
    sqlite_url: str, tmp_path: Path, extra: list[str], message: str
) -> None:
    done = subprocess.run(
        live_command("http://127.0.0.1:9", *extra),
        env=environment(sqlite_url), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not (tmp_path / "test.sqlite3").exists()


def test_an_unknown_strategy_and_a_bad_venue_url_are_one_line(sqlite_url: str) -> None:
    unknown = live_command("http://127.0.0.1:9")
    unknown[unknown.index("sma_cross")] = "no_such"
    for command, message in (
        (unknown, "no_such"),
        (live_command("ftp://example"), "venue: must be an http(s)://host[:port] URL"),
    ):
        done = subprocess.run(
            command, env=environment(sqlite_url), capture_output=True, text=True, timeout=60
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and message in lines[0], done.stderr


def test_a_database_not_migrated_is_one_line_and_no_file_is_made(
    tmp_path: Path, exchange: PaperProcess
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing.sqlite3'}"
    done = subprocess.run(
        live_command(exchange.url), env=environment(url), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert not (tmp_path / "missing.sqlite3").exists()


def wait_until_reconciled(database_url: str, timeout: float = 30) -> None:
    """Until the runner has reconciled at its start (it records the balances then)."""

    async def snapshots() -> int:
        async with Database(settings=Settings(database_url=database_url)) as db:
            return len(await db.orders.balances(venue="paper"))

    deadline = time.monotonic() + timeout
    while not asyncio.run(snapshots()):
        assert time.monotonic() < deadline, "the runner never reconciled"
        time.sleep(0.1)


def wait_until_an_order_is_placed(
    database_url: str, runner: subprocess.Popen[str], timeout: float = 60
) -> None:
    """Until the runner has decided on a bar and placed an order (beside the resting one)."""

    async def orders() -> int:
        async with Database(settings=Settings(database_url=database_url)) as db:
            return len(await db.orders.list())

    deadline = time.monotonic() + timeout
    while asyncio.run(orders()) < 2:
        assert runner.poll() is None, runner.communicate()[1]
        assert time.monotonic() < deadline, "the runner placed no order"
        time.sleep(0.2)


def _start_runner(url: str, database_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        live_command(url, "--venue-name", "paper", "--json"),
        env=environment(database_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


async def _manual_market_order(url: str, *, within: float = 30) -> None:
    """An order placed on the account by someone else (a person, another bot). The runner may
    have spent the account's cash on a position of its own by then: the order is tried again
    until the runner is out of the market and the cash is back."""
    from quantflow_async.live.venue import NewOrder

    venue = CcxtVenue.connect(url, VenueCredentials.placeholder(), name="manual")
    deadline = time.monotonic() + within
    try:
        for attempt in itertools.count(1):
            order = NewOrder(f"manual-{attempt}", SYMBOL, "buy", "market", Decimal(1))
            try:
                await venue.create_order(order)
                return
            except VenueRejected as refused:
                if INSUFFICIENT_BALANCE not in str(refused) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)
    finally:
        await venue.aclose()


def test_a_trade_of_someone_elses_order_is_left_alone_and_the_runner_goes_on(
    exchange: PaperProcess, sqlite_url: str
) -> None:
    asyncio.run(_migrated_with_a_resting_order(sqlite_url, exchange.url))
    runner = _start_runner(exchange.url, sqlite_url)
    try:
        wait_until_reconciled(sqlite_url)
        asyncio.run(_manual_market_order(exchange.url))
        # After each decision the runner reads the account's new trades: it says so on stderr.
        said = _first_line_with(runner, "left alone: trade", within=60)
        assert runner.poll() is None
        runner.send_signal(signal.SIGTERM)
        out, err = runner.communicate(timeout=30)
        assert runner.returncode == 0, err
        assert said is not None, err
    finally:
        if runner.poll() is None:  # a failed check: the runner is not left running
            runner.kill()
        runner.communicate()


def _first_line_with(runner: subprocess.Popen[str], text: str, *, within: float) -> str | None:
    """The first stderr line of `runner` holding `text`, read as it comes, or None."""
    found: list[str] = []
    assert runner.stderr is not None
    stderr = runner.stderr

    def read() -> None:
        for line in stderr:
            if text in line:
                found.append(line)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(within)
    return found[0] if found else None


def test_sigterm_while_the_venue_is_unreachable_still_stops_cleanly(
    tmp_path: Path, sqlite_url: str
) -> None:
    bars = write_bars(tmp_path / "bars.csv", random_walk(2_000, seed=5))
    state = tmp_path / "exchange.sqlite3"
    with paper_process(bars, state, extra=["--bar-seconds", "0.1"]) as paper:
        asyncio.run(_migrated_with_a_resting_order(sqlite_url, paper.url))
        runner = _start_runner(paper.url, sqlite_url)
        wait_until_reconciled(sqlite_url)
        paper.kill()  # the venue is gone: the runner retries its polls
    time.sleep(1)
    started = time.monotonic()
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 0, err
    assert time.monotonic() - started < 5
    assert json.loads(out)["stopped_by"] == "stop"


def test_sigterm_before_the_venue_ever_answered_says_nothing_was_reconciled(
    tmp_path: Path, sqlite_url: str
) -> None:
    bars = write_bars(tmp_path / "bars.csv", random_walk(200, seed=5))
    with paper_process(bars, tmp_path / "exchange.sqlite3") as paper:
        asyncio.run(_migrated_with_a_resting_order(sqlite_url, paper.url))
    runner = _start_runner(paper.url, sqlite_url)  # the venue is gone before the runner starts
    retrying = _first_line_with(runner, "retry 1", within=60)
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=30)
    assert retrying is not None and runner.returncode == 0, err
    document = json.loads(out)
    assert (document["reconciliation"], document["bars_decided"]) == (None, 0)
    assert "stopped before the reconciliation ended" in err


@pytest.mark.slow  # the venue is down for seconds on purpose
def test_the_runner_waits_out_a_venue_outage_and_carries_on(
    tmp_path: Path, sqlite_url: str
) -> None:
    bars = write_bars(tmp_path / "bars.csv", random_walk(2_000, seed=5))
    state = tmp_path / "exchange.sqlite3"
    with paper_process(bars, state, extra=["--bar-seconds", "0.1"]) as paper:
        asyncio.run(_migrated_with_a_resting_order(sqlite_url, paper.url))
        port = paper.url.rsplit(":", 1)[1]
        runner = _start_runner(paper.url, sqlite_url)
        wait_until_reconciled(sqlite_url)
    time.sleep(12)  # longer than one call's retry budget
    assert runner.poll() is None, runner.communicate()[1]
    with paper_process(bars, state, extra=["--bar-seconds", "0.1", "--port", port]) as again:
        assert again.url.endswith(port)
        wait_until_an_order_is_placed(sqlite_url, runner)
        runner.send_signal(signal.SIGTERM)
        out, err = runner.communicate(timeout=30)
    assert runner.returncode == 0, err
    assert json.loads(out)["bars_decided"] > 0

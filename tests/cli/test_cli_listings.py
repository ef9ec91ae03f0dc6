"""`quantflow strategies`, `backtests` and `trades list`.

Each listing prints a table on a terminal, tab-separated lines when piped, and JSON with
`--json`; each mistake is one line on stderr and changes nothing. The command is called in
this process (`tests.support.cli`); what a terminal shows is seen in a new process on a pty.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from quantflow_async import Database, Trade

from ..conftest import T0, make_fill
from .test_cli import assert_one_line_mistake, clean_env, quantflow

# The command is a thin layer over the library, whose tests run on both backends; the tests
# here run on SQLite unless what they check goes through the backend (filters, exact values).
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])
postgres_only = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)]
)


def run(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`quantflow ARGS` on the database at `url` (given through the environment)."""
    return quantflow(*args, cwd=cwd, env=clean_env(QUANTFLOW_DATABASE_URL=url))


def json_of(url: str, *args: str, cwd: Path) -> Any:
    result = run(url, *args, "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def on_a_terminal(url: str, *args: str, cwd: Path) -> str:
    """What `quantflow ARGS` shows when stdout and stderr are a terminal."""
    controller, terminal = pty.openpty()
    env = clean_env(QUANTFLOW_DATABASE_URL=url, COLUMNS="160", TERM="xterm")
    process = subprocess.run(
        [sys.executable, "-m", "quantflow_async.cli", *args], cwd=cwd, env=env,
        stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, timeout=60,
    )  # fmt: skip
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal's other end is closed: everything has been read
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert process.returncode == 0, shown
    return shown.decode()


async def seed_trades(db: Database, strategy_id: int, backtest_id: int) -> list[Trade]:
    """Trades of a backtest on two symbols and live trades, with the edge values of money."""
    fills = [
        make_fill(
            strategy_id, n, backtest_id=backtest_id,
            symbol="BTCUSDT" if n % 3 else "ETHUSDT",
            price=["42000.10", "0.000000000000000001", "12345678901234567890.123456789012345678",
                   "7"][n % 4],
            fee=None if n % 5 == 0 else "0.0004",
            pnl=None if n % 2 == 0 else f"-{n}.25",
            metadata={"signal": n, "tags": ["a", "é"]} if n % 4 == 1 else None,
        )
        for n in range(12)
    ]  # fmt: skip
    fills += [make_fill(strategy_id, n, symbol="SOLUSDT") for n in range(12, 16)]
    await db.trades.insert_many(fills)
    return await db.trades.list(limit=1000)


# -- strategies -------------------------------------------------------------------------------


@sqlite_only
def test_a_created_strategy_is_stored_with_its_exact_config(tmp_path: Path, db: Database) -> None:
    url = db.settings.database_url
    config = '{"fast": 10, "slow": 30, "threshold": "0.0005", "symbols": ["BTCUSDT"]}'
    result = run(url, "strategies", "create", "sma-cross", "--config", config,
                 "--description", "two moving averages", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "created strategy 1 'sma-cross'"
    [listed] = json_of(url, "strategies", "list", cwd=tmp_path)
    assert listed["config"] == json.loads(config)
    assert (listed["name"], listed["description"], listed["status"]) == (
        "sma-cross", "two moving averages", "inactive",
    )  # fmt: skip


@sqlite_only
async def test_a_config_can_come_from_a_file(tmp_path: Path, db: Database) -> None:
    (tmp_path / "config.json").write_text('{"fast": 5}')
    url = db.settings.database_url
    created = json_of(url, "strategies", "create", "s", "--config", "@config.json", cwd=tmp_path)
    assert created["config"] == {"fast": 5}
    assert (await db.strategies.get_by_name("s")).config == {"fast": 5}


@sqlite_only
@pytest.mark.parametrize(
    "config, message",
    [
        ("{fast: 10}", "--config: the value is not valid JSON (Expecting property name"),
        ("[1, 2]", "must be a JSON object"),
        ("@missing.json", "cannot read missing.json: No such file or directory"),
        ("@.", "cannot read .: Is a directory"),
    ],
    ids=["bad JSON", "not an object", "missing file", "a directory"],
)
async def test_a_bad_config_is_one_line_and_stores_nothing(
    tmp_path: Path, db: Database, config: str, message: str
) -> None:
    result = run(db.settings.database_url, "strategies", "create", "s", "--config", config,
                 cwd=tmp_path)  # fmt: skip
    assert_one_line_mistake(result, message)
    assert await db.strategies.list() == []


@sqlite_only
async def test_a_name_taken_is_one_line_and_keeps_the_first(tmp_path: Path, db: Database) -> None:
    first = await db.strategies.create(name="sma-cross", config={"fast": 10})
    result = run(db.settings.database_url, "strategies", "create", "sma-cross", cwd=tmp_path)
    assert_one_line_mistake(result, "a strategy named 'sma-cross' already exists")
    assert await db.strategies.list() == [first]


@sqlite_only
async def test_strategies_list_filters_by_status(tmp_path: Path, db: Database) -> None:
    await db.strategies.create(name="idle")
    await db.strategies.create(name="busy", status="active")
    listed = json_of(db.settings.database_url, "strategies", "list", "--status", "active",
                     cwd=tmp_path)  # fmt: skip
    assert [s["name"] for s in listed] == ["busy"]


@sqlite_only
async def test_strategies_show_names_its_backtests(
    tmp_path: Path, db: Database, strategy_id: int, backtest_id: int
) -> None:
    shown = json_of(db.settings.database_url, "strategies", "show", str(strategy_id),
                    cwd=tmp_path)  # fmt: skip
    assert (shown["id"], shown["name"], shown["backtests"]) == (strategy_id, "sma-cross",
                                                                [backtest_id])  # fmt: skip


@sqlite_only
async def test_piped_listings_are_tab_separated_lines_with_a_header(
    tmp_path: Path, db: Database
) -> None:
    await db.strategies.create(name="sma-cross", description="a\tb")
    result = run(db.settings.database_url, "strategies", "list", cwd=tmp_path)
    header, row = result.stdout.splitlines()
    assert header.split("\t") == ["id", "name", "status", "description", "config", "created"]
    assert row.split("\t")[:5] == ["1", "sma-cross", "inactive", "a b", "{}"]


@sqlite_only
async def test_on_a_terminal_a_listing_is_a_drawn_table(tmp_path: Path, db: Database) -> None:
    await db.strategies.create(name="sma-cross")
    shown = on_a_terminal(db.settings.database_url, "strategies", "list", cwd=tmp_path)
    assert "sma-cross" in shown
    assert "┃" in shown or "│" in shown  # Rich's box drawing, which piped output never has
    assert "\t" not in shown


# -- backtests --------------------------------------------------------------------------------


@sqlite_only
async def test_backtests_list_filters_by_strategy_and_status_and_leaves_results_out(
    tmp_path: Path, db: Database, strategy_id: int, backtest_id: int
) -> None:
    other = await db.strategies.create(name="other")
    await db.backtests.create(strategy_id=other.id, name="x", start_date=T0,
                              end_date=T0 + timedelta(days=1), initial_capital="1")  # fmt: skip
    await db.backtests.set_status(backtest_id, "running")
    await db.backtests.save_results(backtest_id, metrics={"return_pct": 1.5}, results={"x": 1})
    url = db.settings.database_url
    listed = json_of(url, "backtests", "list", "--strategy", str(strategy_id), cwd=tmp_path)
    assert [b["id"] for b in listed] == [backtest_id]
    assert listed[0]["metrics"] == {"return_pct": 1.5}
    assert listed[0]["initial_capital"] == "10000"
    assert "results" not in listed[0]
    running = json_of(url, "backtests", "list", "--status", "running", cwd=tmp_path)
    assert [b["id"] for b in running] == [backtest_id]
    assert len(json_of(url, "backtests", "list", cwd=tmp_path)) == 2


async def test_backtests_show_gives_results_and_exact_totals_per_symbol(
    tmp_path: Path, db: Database, strategy_id: int, backtest_id: int
) -> None:
    await seed_trades(db, strategy_id, backtest_id)
    await db.backtests.save_results(backtest_id, results={"equity": [[1, 10000.0]]})
    shown = json_of(db.settings.database_url, "backtests", "show", str(backtest_id),
                    cwd=tmp_path)  # fmt: skip
    assert shown["results"] == {"equity": [[1, 10000.0]]}
    expected = await db.trades.summary(backtest_id=backtest_id)
    assert [(s["symbol"], s["trade_count"], Decimal(s["notional"]), Decimal(s["realized_pnl"]))
            for s in shown["trades_by_symbol"]] == [
        (s.symbol, s.trade_count, s.notional, s.realized_pnl) for s in expected
    ]  # fmt: skip


async def test_backtests_show_piped_leaves_out_the_trades_of_a_backtest_without_any(
    tmp_path: Path, db: Database, backtest_id: int
) -> None:
    shown = run(db.settings.database_url, "backtests", "show", str(backtest_id), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[-1].startswith("updated_at\t")  # its last field ends it
    assert not any(line.startswith("symbol\t") for line in shown.stdout.splitlines())
    assert shown.stderr == "no trades stored for this backtest\n"


# -- trades list ------------------------------------------------------------------------------


async def test_trades_list_applies_the_same_filters_as_the_api(
    tmp_path: Path, db: Database, strategy_id: int, backtest_id: int
) -> None:
    await seed_trades(db, strategy_id, backtest_id)
    url = db.settings.database_url
    cases: list[tuple[list[str], dict[str, Any]]] = [
        (["--backtest", str(backtest_id)], {"backtest_id": backtest_id}),
        (["--strategy", str(strategy_id)], {"strategy_id": strategy_id}),
        (["--symbol", "ETHUSDT"], {"symbol": "ETHUSDT"}),
        (["--since", "2024-01-01T00:00:03Z", "--until", "2024-01-01T00:00:09"],
         {"since": T0 + timedelta(seconds=3), "until": T0 + timedelta(seconds=9)}),
    ]  # fmt: skip
    for options, filters in cases:
        listed = json_of(url, "trades", "list", *options, cwd=tmp_path)
        expected = await db.trades.list(**filters)
        assert [t["id"] for t in listed] == [t.id for t in expected], options


async def test_trades_list_live_gives_the_live_fills_only(
    tmp_path: Path, db: Database, strategy_id: int, backtest_id: int
) -> None:
    stored = await seed_trades(db, strategy_id, backtest_id)
    url = db.settings.database_url
    live = [t.id for t in stored if t.backtest_id is None]
    assert len(live) == 4
    for options in (["--live"], ["--live", "--strategy", str(strategy_id)],
                    ["--live", "--symbol", "SOLUSDT", "--since", "2024-01-01"]):  # fmt: skip
        listed = json_of(url, "trades", "list", *options, cwd=tmp_path)
        assert [t["id"] for t in listed] == live, options
    mistake = run(url, "trades", "list", "--live", "--backtest", str(backtest_id), cwd=tmp_path)
    assert_one_line_mistake(mistake, "--live: cannot go with --backtest")


async def test_trades_list_json_carries_every_field_exactly(
    tmp_path: Path, db: Database, strategy_id: int, backtest_id: int
) -> None:
    stored = await seed_trades(db, strategy_id, backtest_id)
    listed = json_of(db.settings.database_url, "trades", "list", cwd=tmp_path)
    assert len(listed) == len(stored)
    for row, trade in zip(listed, stored, strict=True):
        assert Decimal(row["price"]) == trade.price
        assert row["price"] == format(trade.price, "f")
        assert row["fee"] == (None if trade.fee is None else format(trade.fee, "f"))
        assert row["executed_at"] == trade.executed_at.isoformat()
        assert row["metadata"] == trade.metadata
        assert (row["external_id"], row["backtest_id"]) == (trade.external_id, trade.backtest_id)


@sqlite_only
async def test_trades_list_pages_with_limit_and_after_id_cover_every_trade_once(
    tmp_path: Path, db: Database, strategy_id: int, backtest_id: int
) -> None:
    stored = await seed_trades(db, strategy_id, backtest_id)
    seen: list[int] = []
    after: list[str] = []
    while page := json_of(db.settings.database_url, "trades", "list", "--limit", "5", *after,
                          cwd=tmp_path):  # fmt: skip
        assert len(page) <= 5
        seen += [t["id"] for t in page]
        after = ["--after-id", str(page[-1]["id"])]
    assert seen == [t.id for t in stored]


@sqlite_only
@pytest.mark.parametrize(
    "args, message",
    [
        (["trades", "list", "--backtest", "99"], "backtest with id=99 does not exist"),
        (["trades", "list", "--strategy", "99"], "strategy with id=99 does not exist"),
        (["trades", "list", "--after-id", "99"], "trade with after_id=99 does not exist"),
        (["trades", "list", "--limit", "0"], "limit: must be an int from 1 to 100000"),
        (["trades", "list", "--since", "yesterday"], "'yesterday' is not an ISO 8601 date"),
        (["trades", "list", "--backtest", "-1"], "backtest_id: must be a positive id"),
        (["trades", "frobnicate"], "invalid choice: 'frobnicate'"),
        (["trades"], "the following arguments are required: VERB"),
        (["strategies", "show", "99"], "strategy with id=99 does not exist"),
        (["strategies", "show", "x"], "invalid int value: 'x'"),
        (["strategies", "list", "--status", "asleep"], "invalid choice: 'asleep'"),
        (["backtests", "show", "99"], "backtest with id=99 does not exist"),
        (["backtests", "list", "--strategy", "99"], "strategy with id=99 does not exist"),
        (["backtests", "list", "--status", "done"], "invalid choice: 'done'"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
async def test_a_mistake_in_a_listing_is_one_line(
    tmp_path: Path, db: Database, args: list[str], message: str
) -> None:
    assert_one_line_mistake(run(db.settings.database_url, *args, cwd=tmp_path), message)


# -- the database -----------------------------------------------------------------------------

EVERY_COMMAND = [
    ["strategies", "list"],
    ["strategies", "show", "1"],
    ["strategies", "create", "s"],
    ["backtests", "list"],
    ["backtests", "show", "1"],
    ["trades", "list"],
    ["trades", "export", "-o", "out.csv"],
]


@pytest.mark.parametrize("args", EVERY_COMMAND, ids=" ".join)
def test_before_quantflow_migrate_every_command_says_to_run_it_and_creates_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'never-made.sqlite3'}"
    assert_one_line_mistake(run(url, *args, cwd=tmp_path), "run `quantflow migrate`")
    assert os.listdir(tmp_path) == []


@postgres_only
@pytest.mark.parametrize("args", EVERY_COMMAND, ids=" ".join)
async def test_on_a_database_with_no_schema_every_command_says_to_migrate(
    tmp_path: Path, database_url: str, args: list[str]
) -> None:
    assert_one_line_mistake(run(database_url, *args, cwd=tmp_path), "run `quantflow migrate`")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args", EVERY_COMMAND[::3], ids=" ".join)
def test_a_wrong_url_is_one_line_saying_what_to_write(tmp_path: Path, args: list[str]) -> None:
    result = run("sqlite:///x.sqlite3", *args, cwd=tmp_path)
    assert_one_line_mistake(result, "write sqlite+aiosqlite:///x.sqlite3")
    assert os.listdir(tmp_path) == []


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:9/nowhere"  # the discard port: refused
    result = run(url, "strategies", "list", cwd=tmp_path)
    assert_one_line_mistake(result, "127.0.0.1")


@sqlite_only
@pytest.mark.parametrize(
    "argv",
    [
        ["--database-url", "{url}", "strategies", "list", "--json"],
        ["strategies", "--database-url", "{url}", "list", "--json"],
        ["strategies", "list", "--json", "--database-url", "{url}"],
    ],
    ids=["before the group", "between group and verb", "after the verb"],
)
async def test_database_url_works_before_or_after_the_subcommand(
    tmp_path: Path, db: Database, argv: list[str]
) -> None:
    await db.strategies.create(name="here")
    url = db.settings.database_url
    elsewhere = f"sqlite+aiosqlite:///{tmp_path / 'elsewhere.sqlite3'}"
    args = [url if part == "{url}" else part for part in argv]
    result = quantflow(*args, cwd=tmp_path, env=clean_env(QUANTFLOW_DATABASE_URL=elsewhere))
    assert result.returncode == 0, result.stderr
    assert [s["name"] for s in json.loads(result.stdout)] == ["here"]


def test_help_lists_the_command_groups(tmp_path: Path) -> None:
    shown = quantflow("help", cwd=tmp_path, env=clean_env()).stdout
    for group in ("strategies", "backtests", "trades"):
        assert group in shown
    verbs = quantflow("help", "trades", cwd=tmp_path, env=clean_env()).stdout
    assert "list" in verbs and "export" in verbs


async def test_trades_list_no_live_gives_the_backtests_fills_only(
    tmp_path: Path, db: Database, strategy_id: int, backtest_id: int
) -> None:
    stored = await seed_trades(db, strategy_id, backtest_id)
    listed = json_of(db.settings.database_url, "trades", "list", "--no-live", cwd=tmp_path)
    assert [t["id"] for t in listed] == [t.id for t in stored if t.backtest_id is not None]

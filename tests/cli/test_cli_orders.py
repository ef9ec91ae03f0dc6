"""`quantflow orders list|show` and `quantflow positions` on a journal filled through the journal.

Each command prints a table on a terminal, tab-separated lines when piped and one JSON document
with `--json`; a mistake is one line on stderr, and no command ever creates a database file.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from quantflow_async import Database, Settings
from quantflow_async.cli import app, orders
from quantflow_async.errors import OrderEventRefused
from quantflow_async.live.orders import OrderRequest
from quantflow_async.live.venue import AssetBalance, VenueTrade

from ..conftest import T0


@dataclass(frozen=True)
class Ran:
    status: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.status == 0, self.stderr
        return json.loads(self.stdout)

    def lines(self) -> list[list[str]]:
        assert self.status == 0, self.stderr
        return [line.split("\t") for line in self.stdout.splitlines()]


def parser_with_orders() -> app.Parser:
    """`quantflow` with only the commands of this module, and the options every command has."""
    parser = app.Parser(prog="quantflow")
    parser.add_argument("--database-url")
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=app.Parser
    )
    orders.register(commands)
    return parser


@pytest.fixture
def quantflow(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> Any:
    """Run `quantflow ARGS` in this process through the real `main`, on the test database.

    `main` runs its own event loop, so it runs in a thread beside the test's.
    """
    monkeypatch.setattr(app, "build_parser", parser_with_orders)
    monkeypatch.delenv("QUANTFLOW_DATABASE_URL", raising=False)

    def main(argv: list[str]) -> int:
        try:
            return app.main(argv)
        except SystemExit as exit_:  # argparse's own mistakes
            return int(exit_.code or 0)

    async def run(*args: str, url: str = sqlite_url) -> Ran:
        capsys.readouterr()
        status = await asyncio.to_thread(main, ["--database-url", url, *args])
        out, err = capsys.readouterr()
        return Ran(status, out, err)

    return run


def assert_one_line_mistake(ran: Ran, message: str) -> None:
    assert ran.status != 0
    assert ran.stdout == ""
    assert "Traceback" not in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert message in ran.stderr


# -- the journal ------------------------------------------------------------------------------


def execution(
    trade_id: str, venue_order_id: str, symbol: str, side: str, quantity: str, price: str,
    fee: str = "0", fee_asset: str = "USDT",
) -> VenueTrade:  # fmt: skip
    return VenueTrade(
        trade_id=trade_id, venue_order_id=venue_order_id, symbol=symbol,
        side=side,  # type: ignore[arg-type]
        quantity=Decimal(quantity), price=Decimal(price), fee=Decimal(fee), fee_asset=fee_asset,
        executed_at=T0 + timedelta(minutes=int(trade_id.removeprefix("t-"))),
    )  # fmt: skip


async def _write_journal(url: str) -> None:
    """Migrate the SQLite database at `url` and write into it the journal of two strategies,
    "sma-cross" (id 1) and "2024" (id 2, a name of digits), on two venues; orders by id and
    client order id:

    1 `btc-1`   sma-cross, paper:   limit buy 0.5 BTCUSDT, filled in two, then a fill refused
    2 `eth-2`   sma-cross, paper:   limit sell 2 ETHUSDT, 0.5 filled, then cancelled
    3 `shib-3`  sma-cross, paper:   market buy 100000000 SHIBUSDT at 0.00000001, filled
    4 `4`       2024, binance:      market buy 1 BTCUSDT, only intended

    and two balance snapshots on paper, the second one hour later, with USDT only.
    """
    async with Database(settings=Settings(database_url=url)) as database:
        await database.migrate()
        sma = await database.strategies.create(name="sma-cross")
        other = await database.strategies.create(name="2024")
        async with database.journal(strategy_id=sma.id, venue="paper") as journal:
            await journal.intend(OrderRequest(
                symbol="BTCUSDT", side="buy", quantity=Decimal("0.5"), type="limit",
                limit_price=Decimal("42000.10"), client_order_id="btc-1",
            ))  # fmt: skip
            await journal.submitted("btc-1")
            await journal.acknowledged("btc-1", "v-1")
            await journal.filled(
                execution("t-1", "v-1", "BTCUSDT", "buy", "0.2", "42000.10", "0.0002", "BTC")
            )
            await journal.filled(execution("t-2", "v-1", "BTCUSDT", "buy", "0.3", "41999.90"))
            with pytest.raises(OrderEventRefused):
                await journal.filled(execution("t-3", "v-1", "BTCUSDT", "buy", "0.1", "41000"))

            await journal.intend(OrderRequest(
                symbol="ETHUSDT", side="sell", quantity=Decimal("2"), type="limit",
                limit_price=Decimal("2500"), client_order_id="eth-2",
            ))  # fmt: skip
            await journal.submitted("eth-2")
            await journal.acknowledged("eth-2", "v-2")
            await journal.filled(
                execution("t-4", "v-2", "ETHUSDT", "sell", "0.5", "2500.5", "1.25")
            )
            await journal.cancel_requested("eth-2")
            await journal.cancelled("eth-2", reason="asked by the bot", venue_event_id="c-2")

            await journal.intend(OrderRequest(
                symbol="SHIBUSDT", side="buy", quantity=Decimal("100000000"),
                client_order_id="shib-3",
            ))  # fmt: skip
            await journal.submitted("shib-3")
            await journal.acknowledged("shib-3", "v-3")
            await journal.filled(
                execution("t-5", "v-3", "SHIBUSDT", "buy", "100000000", "0.00000001")
            )
            await journal.record_balances(
                {"USDT": AssetBalance("USDT", Decimal("1000"), Decimal("0")),
                 "BTC": AssetBalance("BTC", Decimal("0.1"), Decimal("0"))},
                taken_at=T0,
            )  # fmt: skip
            await journal.record_balances(
                {"USDT": AssetBalance("USDT", Decimal("979.000000000000000001"),
                                      Decimal("21"))},
                taken_at=T0 + timedelta(hours=1),
            )  # fmt: skip
        async with database.journal(strategy_id=other.id, venue="binance") as journal:
            await journal.intend(
                OrderRequest(symbol="BTCUSDT", side="buy", quantity=Decimal("1"),
                             client_order_id="4")
            )  # fmt: skip


@pytest.fixture(scope="module")
def journal_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The journal of `_write_journal`, written once for the module's tests to copy."""
    path = tmp_path_factory.mktemp("journal") / "journal.sqlite3"
    asyncio.run(_write_journal(f"sqlite+aiosqlite:///{path}"))
    assert not path.with_name(f"{path.name}-wal").exists()  # every page is in the file itself
    return path


@pytest.fixture
async def db(sqlite_url: str, tmp_path: Path, journal_file: Path) -> AsyncIterator[Database]:
    """An open copy of the journal of `_write_journal`, at `sqlite_url`."""
    shutil.copyfile(journal_file, tmp_path / "test.sqlite3")
    async with Database(settings=Settings(database_url=sqlite_url)) as database:
        yield database


# -- orders list ------------------------------------------------------------------------------


async def test_orders_list_piped_is_a_header_and_one_tab_separated_line_per_order(
    db: Database, quantflow: Any
) -> None:
    header, *rows = (await quantflow("orders", "list")).lines()
    assert header == [
        "id", "client order id", "venue order id", "symbol", "side", "type", "quantity",
        "filled", "average price", "status", "updated",
    ]  # fmt: skip
    assert [row[:10] for row in rows] == [
        ["1", "btc-1", "v-1", "BTCUSDT", "buy", "limit", "0.5", "0.5", "41999.98", "filled"],
        ["2", "eth-2", "v-2", "ETHUSDT", "sell", "limit", "2", "0.5", "2500.5", "cancelled"],
        ["3", "shib-3", "v-3", "SHIBUSDT", "buy", "market", "100000000", "100000000",
         "0.00000001", "filled"],
        ["4", "4", "", "BTCUSDT", "buy", "market", "1", "0", "", "intended"],
    ]  # fmt: skip


async def test_orders_list_json_is_one_document_with_exact_decimals(
    db: Database, quantflow: Any
) -> None:
    listed = (await quantflow("orders", "list", "--json")).json()
    stored = await db.orders.list()
    assert [o["id"] for o in listed] == [o.id for o in stored] == [1, 2, 3, 4]
    shib = listed[2]
    assert (shib["average_price"], shib["quantity"]) == ("0.00000001", "100000000")
    assert listed[0]["limit_price"] == "42000.10"
    assert listed[3]["average_price"] is None
    assert listed[0]["updated_at"] == stored[0].updated_at.isoformat()


@pytest.mark.parametrize(
    "options, expected",
    [
        (["--strategy", "sma-cross"], [1, 2, 3]),
        (["--strategy", "2"], [4]),
        (["--strategy", "2024"], [4]),  # no strategy has id 2024: it is a name
        (["--venue", "binance"], [4]),
        (["--status", "filled"], [1, 3]),
        (["--status", "cancelled", "intended"], [2, 4]),
        (["--status", "cancelled", "--status", "intended"], [2, 4]),
        (["--symbol", "BTCUSDT"], [1, 4]),
        (["--symbol", "BTCUSDT", "--venue", "paper"], [1]),
        (["--limit", "2"], [1, 2]),
        (["--limit", "2", "--after-id", "2"], [3, 4]),
    ],
    ids=lambda value: " ".join(map(str, value)),
)
async def test_orders_list_filters(
    db: Database, quantflow: Any, options: list[str], expected: list[int]
) -> None:
    assert [
        o["id"] for o in (await quantflow("orders", "list", *options, "--json")).json()
    ] == expected


async def test_orders_list_with_nothing_matching_is_a_header_alone(
    db: Database, quantflow: Any
) -> None:
    assert (await quantflow("orders", "list", "--status", "expired")).lines() == [
        ["id", "client order id", "venue order id", "symbol", "side", "type", "quantity",
         "filled", "average price", "status", "updated"],
    ]  # fmt: skip


async def test_on_a_terminal_orders_list_is_a_drawn_table(
    db: Database, quantflow: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown = Terminal()
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "stdout", shown)
    assert (await quantflow("orders", "list")).status == 0
    drawn = shown.getvalue()
    assert "shib-3" in drawn and "0.00000001" in drawn
    assert "│" in drawn or "┃" in drawn
    assert "\t" not in drawn and "E-8" not in drawn


# -- orders show ------------------------------------------------------------------------------


async def test_orders_show_gives_the_order_then_its_events_in_order_refused_marked(
    db: Database, quantflow: Any
) -> None:
    lines = (await quantflow("orders", "show", "btc-1")).lines()
    fields = dict(line for line in lines if len(line) == 2)
    assert (fields["id"], fields["status"], fields["filled_quantity"]) == ("1", "filled", "0.5")
    assert (fields["limit_price"], fields["average_price"]) == ("42000.10", "41999.98")
    header_at = lines.index(list(orders.EVENT_COLUMNS))
    events = lines[header_at + 1 :]
    assert [(e[1], e[2], e[3], e[4], e[7]) for e in events] == [
        ("intent", "intended", "0.5", "42000.10", ""),
        ("submitted", "submitted", "", "", ""),
        ("acknowledged", "open", "", "", ""),
        ("fill", "partially_filled", "0.2", "42000.10", "t-1"),
        ("fill", "filled", "0.3", "41999.90", "t-2"),
        ("refused (fill)", "filled", "0.1", "41000", "t-3"),
    ]
    assert [e[0] for e in events] == sorted(e[0] for e in events)
    assert events[-1][6] == "the order is filled"
    assert [e[5] for e in events[3:5]] == ["0.0002 BTC", "0 USDT"]


async def test_orders_show_json_holds_the_order_and_every_event(
    db: Database, quantflow: Any
) -> None:
    shown = (await quantflow("orders", "show", "2", "--json")).json()
    assert (shown["client_order_id"], shown["status"], shown["filled_quantity"]) == (
        "eth-2", "cancelled", "0.5",
    )  # fmt: skip
    kinds = [(e["kind"], e["status_after"]) for e in shown["events"]]
    assert kinds == [
        ("intent", "intended"), ("submitted", "submitted"), ("acknowledged", "open"),
        ("fill", "partially_filled"), ("cancel_requested", "partially_filled"),
        ("cancelled", "cancelled"),
    ]  # fmt: skip
    assert shown["events"][-1]["reason"] == "asked by the bot"
    assert shown["events"][3]["fee"] == "1.25"


async def test_orders_show_json_keeps_what_a_refused_event_attempted(
    db: Database, quantflow: Any
) -> None:
    refused = (await quantflow("orders", "show", "1", "--json")).json()["events"][-1]
    assert refused["kind"] == "refused"
    assert refused["details"]["attempted"] == "fill"
    assert refused["details"]["venue_event_id"] == "t-3"


async def test_an_all_digit_client_order_id_is_found_when_no_order_has_that_id(
    db: Database, quantflow: Any
) -> None:
    # Order 4's client id is "4", the same as its id: either way it is order 4.
    assert (await quantflow("orders", "show", "4", "--json")).json()["client_order_id"] == "4"
    assert (await quantflow("orders", "show", "3", "--json")).json()["client_order_id"] == "shib-3"


# -- positions --------------------------------------------------------------------------------


async def test_positions_piped_are_positions_then_a_blank_line_then_the_latest_balances(
    db: Database, quantflow: Any
) -> None:
    ran = await quantflow("positions")
    assert ran.status == 0, ran.stderr
    held, balances = ran.stdout.split("\n\n")
    assert [line.split("\t")[:7] for line in held.splitlines()] == [
        list(orders.POSITION_COLUMNS[:7]),
        ["sma-cross", "paper", "BTCUSDT", "0.5", "41999.98", "0", "0.0002"],
        ["sma-cross", "paper", "ETHUSDT", "-0.5", "2500.5", "0", "1.25"],
        ["sma-cross", "paper", "SHIBUSDT", "100000000", "0.00000001", "0", "0"],
    ]
    assert [line.split("\t") for line in balances.splitlines()] == [
        list(orders.BALANCE_COLUMNS),
        ["paper", "BTC", "0.1", "0", "0.1", "2024-01-01 00:00:00"],
        ["paper", "USDT", "979.000000000000000001", "21", "1000.000000000000000001",
         "2024-01-01 01:00:00"],
    ]  # fmt: skip


async def test_positions_json_has_positions_and_balances_under_their_own_keys(
    db: Database, quantflow: Any
) -> None:
    shown = (await quantflow("positions", "--json")).json()
    assert set(shown) == {"positions", "balances"}
    btc = shown["positions"][0]
    assert (btc["strategy"], btc["strategy_id"], btc["symbol"]) == ("sma-cross", 1, "BTCUSDT")
    assert (btc["quantity"], btc["average_price"], btc["fees"]) == ("0.5", "41999.98", "0.0002")
    assert [(b["asset"], b["free"], b["total"]) for b in shown["balances"]] == [
        ("BTC", "0.1", "0.1"),
        ("USDT", "979.000000000000000001", "1000.000000000000000001"),
    ]


@pytest.mark.parametrize(
    "options, symbols, venues",
    [
        (["--strategy", "2024"], [], ["paper"]),
        (["--strategy", "1"], ["BTCUSDT", "ETHUSDT", "SHIBUSDT"], ["paper"]),
        (["--venue", "binance"], [], []),
    ],
    ids=lambda value: " ".join(value),
)
async def test_positions_filter_by_strategy_and_venue(
    db: Database, quantflow: Any, options: list[str], symbols: list[str], venues: list[str]
) -> None:
    shown = (await quantflow("positions", *options, "--json")).json()
    assert [p["symbol"] for p in shown["positions"]] == symbols
    assert sorted({b["venue"] for b in shown["balances"]}) == venues


# -- mistakes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["orders", "show", "99"], "order with id or client_order_id='99' does not exist"),
        (["orders", "show", "nope"], "order with id or client_order_id='nope' does not exist"),
        (["orders", "list", "--status", "done"], "invalid choice: 'done'"),
        (["orders", "list", "--status"], "expected at least one argument"),
        (["orders", "list", "--strategy", "nope"], "strategy with name='nope' does not exist"),
        (["orders", "list", "--strategy", "99"], "strategy with id=99 does not exist"),
        (["orders", "list", "--limit", "0"], "limit: must be an int from 1 to 100000"),
        (["positions", "--strategy", "nope"], "strategy with name='nope' does not exist"),
        (["orders"], "the following arguments are required: VERB"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
async def test_a_mistake_is_one_line(
    db: Database, quantflow: Any, args: list[str], message: str
) -> None:
    assert_one_line_mistake(await quantflow(*args), message)


EVERY_COMMAND = [["orders", "list"], ["orders", "show", "1"], ["positions"]]


@pytest.mark.parametrize("args", EVERY_COMMAND, ids=" ".join)
async def test_before_quantflow_migrate_every_command_says_to_run_it_and_creates_nothing(
    tmp_path: Path, quantflow: Any, args: list[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'never-made.sqlite3'}"
    assert_one_line_mistake(await quantflow(*args, url=url), "run `quantflow migrate`")
    assert os.listdir(tmp_path) == []


# -- as a user runs it ------------------------------------------------------------------------


def as_a_user(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m quantflow_async.cli ARGS`; skipped while app.py does not register `orders`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTFLOW_")}
    ran = subprocess.run(
        [sys.executable, "-m", "quantflow_async.cli", *args],
        cwd=tmp_path, env={**env, "QUANTFLOW_DATABASE_URL": url},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if "invalid choice: 'orders'" in ran.stderr or "invalid choice: 'positions'" in ran.stderr:
        pytest.skip("`quantflow orders` and `positions` are not registered in cli/app.py yet")
    return ran


async def test_as_a_user_orders_list_json_and_show_mistake(
    tmp_path: Path, db: Database, sqlite_url: str
) -> None:
    listed = as_a_user(tmp_path, sqlite_url, "orders", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [o["client_order_id"] for o in json.loads(listed.stdout)] == [
        "btc-1", "eth-2", "shib-3", "4",
    ]  # fmt: skip
    missing = as_a_user(tmp_path, sqlite_url, "orders", "show", "99")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "quantflow: error: order with id or client_order_id='99' does not exist"
    ]


def test_as_a_user_positions_on_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'never-made.sqlite3'}"
    ran = as_a_user(tmp_path, url, "positions")
    assert ran.returncode == 1
    assert len(ran.stderr.strip().splitlines()) == 1 and "quantflow migrate" in ran.stderr
    assert os.listdir(tmp_path) == []

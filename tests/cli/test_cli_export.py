"""`quantflow trades export`: the stored trades, exactly, in CSV or Parquet; or no file at all.

Every file is read back and compared value by value with what `db.trades` gives.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from quantflow_async import Database, Trade
from quantflow_async.analysis import TRADE_FIELDS

from ..conftest import T0, make_fill
from .test_cli import assert_one_line_mistake, clean_env, quantflow
from .test_cli_listings import on_a_terminal, run, seed_trades, sqlite_only


def export(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = run(url, "trades", "export", *args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def csv_value(trade: Trade, name: str) -> object:
    """The field of `trade` as the CSV holds it, parsed back."""
    value = getattr(trade, name)
    return dict(value) if name == "metadata" and value is not None else value


def parsed(row: dict[str, str], name: str) -> object:
    text = row[name]
    if text == "":
        return None
    if name in ("quantity", "price", "fee", "pnl"):
        return Decimal(text)
    if name in ("executed_at", "created_at", "updated_at"):
        return datetime.fromisoformat(text)
    if name in ("id", "strategy_id", "backtest_id"):
        return int(text)
    if name == "metadata":
        return json.loads(text)
    return text


async def test_csv_holds_every_stored_trade_exactly(
    tmp_path: Path, db: Database, strategy_id: int, backtest_id: int
) -> None:
    stored = await seed_trades(db, strategy_id, backtest_id)
    result = export(db.settings.database_url, "--format", "csv", "-o", "trades.csv", cwd=tmp_path)
    assert result.stdout.startswith(f"wrote {len(stored)} trades to trades.csv (csv")
    rows = read_csv(tmp_path / "trades.csv")
    assert list(rows[0]) == list(TRADE_FIELDS)
    assert len(rows) == len(stored)
    for row, trade in zip(rows, stored, strict=True):
        for name in TRADE_FIELDS:
            assert parsed(row, name) == csv_value(trade, name), (trade.id, name)
        # Money is the stored decimal text itself, not a rounding of it.
        assert row["price"] == format(trade.price, "f")


async def test_parquet_holds_every_stored_trade_exactly_as_decimal_and_utc_timestamps(
    tmp_path: Path, db: Database, strategy_id: int, backtest_id: int
) -> None:
    fills = [
        make_fill(strategy_id, n, backtest_id=backtest_id, price=price, fee=None if n else "0.1",
                  metadata={"n": n} if n else None)
        for n, price in enumerate(["42000.10", "0.000000000000000001",
                                   "99999999999999999999.999999999999999999"])
    ]  # fmt: skip
    await db.trades.insert_many(fills + [make_fill(strategy_id, 3)])
    stored = await db.trades.list()
    export(db.settings.database_url, "-o", "trades.parquet", cwd=tmp_path)
    table = pq.read_table(tmp_path / "trades.parquet")
    assert table.column_names == list(TRADE_FIELDS)
    assert table.schema.field("price").type == pa.decimal128(38, 18)
    assert table.schema.field("executed_at").type == pa.timestamp("us", tz="UTC")
    rows = table.to_pylist()
    for row, trade in zip(rows, stored, strict=True):
        for name in TRADE_FIELDS:
            expected = getattr(trade, name)
            if name == "metadata" and expected is not None:
                expected = json.dumps(dict(expected), separators=(",", ":"))
            assert row[name] == expected, (trade.id, name)


@sqlite_only
async def test_the_filters_choose_what_is_exported(
    tmp_path: Path, db: Database, strategy_id: int, backtest_id: int
) -> None:
    await seed_trades(db, strategy_id, backtest_id)
    url = db.settings.database_url
    export(url, "--backtest", str(backtest_id), "--symbol", "ETHUSDT",
           "--since", "2024-01-01T00:00:01", "-o", "eth.csv", cwd=tmp_path)  # fmt: skip
    expected = await db.trades.list(backtest_id=backtest_id, symbol="ETHUSDT",
                                    since=T0 + timedelta(seconds=1))  # fmt: skip
    assert [int(row["id"]) for row in read_csv(tmp_path / "eth.csv")] == [t.id for t in expected]
    assert expected  # the filter matched something, so the comparison means something


@sqlite_only
@pytest.mark.parametrize("name", ["many.csv", "many.parquet"])
async def test_an_export_of_many_chunks_keeps_every_trade_in_order(
    tmp_path: Path, db: Database, strategy_id: int, name: str
) -> None:
    # More trades than one stream chunk (5,000) and one Parquet row group (50,000 is too many
    # for a quick test; the chunks of the stream are what is crossed here).
    fills = [make_fill(strategy_id, (n * 7919) % 12_001) for n in range(12_001)]
    await db.trades.insert_many(fills)
    expected = [t.id async for t in db.trades.stream()]
    export(db.settings.database_url, "-o", name, cwd=tmp_path)
    if name.endswith(".csv"):
        ids = [int(row["id"]) for row in read_csv(tmp_path / name)]
    else:
        ids = pq.read_table(tmp_path / name, columns=["id"]).column("id").to_pylist()
    assert ids == expected


@sqlite_only
async def test_an_export_of_nothing_writes_the_header_only(tmp_path: Path, db: Database) -> None:
    result = export(db.settings.database_url, "-o", "none.csv", cwd=tmp_path)
    assert result.stdout.startswith("wrote 0 trades")
    assert (tmp_path / "none.csv").read_text() == ",".join(TRADE_FIELDS) + "\n"


@sqlite_only
async def test_an_export_replaces_an_older_file_of_that_name(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    (tmp_path / "trades.csv").write_text("old\n")
    await db.trades.insert_many([make_fill(strategy_id, 1)])
    export(db.settings.database_url, "-o", "trades.csv", cwd=tmp_path)
    assert len(read_csv(tmp_path / "trades.csv")) == 1


@sqlite_only
async def test_piped_an_export_shows_no_progress_and_says_what_it_wrote(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    await db.trades.insert_many([make_fill(strategy_id, n) for n in range(3)])
    result = export(db.settings.database_url, "-o", "t.csv", cwd=tmp_path)
    assert result.stderr == ""
    assert result.stdout.startswith("wrote 3 trades to t.csv (csv, ")


@sqlite_only
async def test_on_a_terminal_an_export_shows_its_progress(
    tmp_path: Path, db: Database, strategy_id: int
) -> None:
    await db.trades.insert_many([make_fill(strategy_id, n) for n in range(7)])
    shown = on_a_terminal(db.settings.database_url, "trades", "export", "-o", "t.csv",
                          cwd=tmp_path)  # fmt: skip
    assert "exporting to t.csv" in shown
    assert "7/7" in shown  # the bar counts the trades written against the trades matched


# -- mistakes: one line, and no file left behind -----------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Where the command runs and writes: apart from the database's own files."""
    made = tmp_path / "work"
    made.mkdir()
    return made


def leftovers(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@sqlite_only
@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "out.txt"], "cannot tell it from the name 'out.txt'; add --format csv|parquet"),
        (["-o", "missing/out.csv"], "cannot write missing/out.csv: No such file or directory"),
        (["--format", "csv", "-o", "."], "cannot write .: it is a directory"),
        (["--format", "xlsx", "-o", "out.csv"], "argument --format: invalid choice: 'xlsx'"),
        (["--format", "csv"], "the following arguments are required: -o/--output"),
        (["--backtest", "99", "-o", "out.csv"], "backtest with id=99 does not exist"),
        (["--strategy", "99", "-o", "out.csv"], "strategy with id=99 does not exist"),
        (["--until", "soon", "-o", "out.csv"], "'soon' is not an ISO 8601 date"),
    ],
    ids=["unknown suffix", "missing folder", "a directory", "unknown format", "no output",
         "unknown backtest", "unknown strategy", "bad time"],
)  # fmt: skip
async def test_a_mistake_is_one_line_and_leaves_no_file(
    folder: Path, db: Database, strategy_id: int, args: list[str], message: str
) -> None:
    await db.trades.insert_many([make_fill(strategy_id, 1)])
    result = run(db.settings.database_url, "trades", "export", *args, cwd=folder)
    assert_one_line_mistake(result, message)
    assert leftovers(folder) == []


@sqlite_only
async def test_a_failed_export_leaves_an_older_file_as_it_was(
    folder: Path, db: Database, strategy_id: int
) -> None:
    (folder / "trades.csv").write_text("old\n")
    result = run(db.settings.database_url, "trades", "export", "--backtest", "99",
                 "-o", "trades.csv", cwd=folder)  # fmt: skip
    assert result.returncode != 0
    assert (folder / "trades.csv").read_text() == "old\n"
    assert leftovers(folder) == ["trades.csv"]


@sqlite_only
async def test_an_amount_parquet_cannot_hold_fails_the_export_naming_the_trade(
    folder: Path, db: Database, strategy_id: int
) -> None:
    # The store keeps 38 digits before the point; decimal128(38, 18) keeps 20. The failure
    # comes mid-stream, after the temporary file was made.
    fills = [make_fill(strategy_id, n) for n in range(3)]
    fills.append(make_fill(strategy_id, 3, price="1" + "0" * 25))
    await db.trades.insert_many(fills)
    big = (await db.trades.list())[-1]
    result = run(db.settings.database_url, "trades", "export", "-o", "t.parquet", cwd=folder)
    assert_one_line_mistake(result, f"price: trade {big.id} holds 10000000000000000000000000")
    assert "export these trades as CSV instead" in result.stderr
    assert leftovers(folder) == []
    export(db.settings.database_url, "-o", "t.csv", cwd=folder)  # which CSV holds exactly
    assert read_csv(folder / "t.csv")[-1]["price"] == "1" + "0" * 25


def run_python(code: str, url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd,
        env=clean_env(QUANTFLOW_DATABASE_URL=url), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@sqlite_only
async def test_parquet_without_pyarrow_names_the_extra_to_install(
    folder: Path, db: Database
) -> None:
    # A None in sys.modules makes `import pyarrow` fail as it does where it is not installed.
    hide_pyarrow = (
        "import sys; sys.modules['pyarrow'] = None; "
        "from quantflow_async.cli import main; sys.exit(main())"
    )
    result = run_python(hide_pyarrow, db.settings.database_url, "trades", "export", "-o",
                        "t.parquet", cwd=folder)  # fmt: skip
    assert_one_line_mistake(
        result,
        "exporting to Parquet needs pyarrow, which is not installed: "
        "pip install 'quantflow-async[analysis]'",
    )
    assert leftovers(folder) == []


def test_export_help_names_both_formats(tmp_path: Path) -> None:
    shown = quantflow("help", "trades", "export", cwd=tmp_path, env=clean_env()).stdout
    assert "{csv,parquet}" in shown and "--output" in shown


@sqlite_only
async def test_ctrl_c_during_an_export_leaves_no_file(
    folder: Path, db: Database, strategy_id: int
) -> None:
    await db.trades.insert_many([make_fill(strategy_id, n) for n in range(30_000)])
    assert interrupted_export(db.settings.database_url, folder) == 130
    assert leftovers(folder) == []


def interrupted_export(url: str, folder: Path) -> int:
    """Press Ctrl-C once the export's temporary file exists; its exit status."""
    export = subprocess.Popen(
        [sys.executable, "-m", "quantflow_async.cli", "trades", "export", "-o", "t.csv"],
        cwd=folder, env=clean_env(QUANTFLOW_DATABASE_URL=url),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell's background job ignores SIGINT, and a child would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    while not leftovers(folder) and export.poll() is None:
        time.sleep(0.002)
    export.send_signal(signal.SIGINT)
    _, errors = export.communicate(timeout=60)
    assert errors.strip() == "quantflow: error: interrupted", errors
    return export.returncode

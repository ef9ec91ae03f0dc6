"""Wild input, thrown by Hypothesis: every value is stored exactly or refused with a clear error.

Nothing here may end in an exception other than the library's InvalidValue (naming a Fill
field or argument), a stored row that reads back different, a dead writer, or a CLI traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from quantflow_async import Database, Fill, FillRejected, InvalidValue, QuantFlowError, cli

FILL_FIELDS = {
    "strategy_id", "backtest_id", "symbol", "side", "type", "quantity", "price", "fee",
    "executed_at", "status", "metadata", "pnl", "external_id",
}  # fmt: skip

wild_numbers = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=-(10**60), max_value=10**60, places=None),
    st.floats(),
    st.integers(min_value=-(10**70), max_value=10**70),
    st.text(max_size=80),
    st.sampled_from(["NaN", "-inf", "1e400", "0." + "0" * 40 + "1", "9" * 60, " 1.5 ", "1_000"]),
    st.sampled_from(["1e-999999999", "1e999999999", "0E-999999999", "1" * 138, "1." + "0" * 50]),
    st.booleans(),
    st.none(),
    st.binary(max_size=8),
)
wild_text = st.one_of(
    st.text(max_size=100),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(["", " ", "\x00", "BTC\u202eUSDT", "\ud800", "🚀", "x" * 10_000_000, "\t"]),
    st.integers(),
    st.none(),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
wild_metadata = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    st.just({"big": "x" * 10_000_000}),
    st.just({"when": datetime(2024, 1, 1)}),
    st.sampled_from([{"x": 1e16}, {"x": -0.0}, {"x": (1, 2)}, {1: "one"}, {"deep": [[[[[[]]]]]]}]),
    st.lists(st.integers(), max_size=3),
)
wild_times = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(
        timezones=st.sampled_from([timezone(timedelta(hours=h)) for h in (-12, -5, 0, 9, 14)])
    ),
    st.datetimes(),
    st.sampled_from(
        [
            datetime.min.replace(tzinfo=timezone(timedelta(hours=5))),
            datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),
            datetime.min.replace(tzinfo=UTC),
            datetime.max.replace(tzinfo=UTC),
        ]
    ),
    st.text(max_size=20),
    st.integers(),
)
wild_ids = st.one_of(
    st.integers(min_value=-5, max_value=10**19), st.text(max_size=3), st.none(), st.booleans()
)


_GOOD: dict[str, Any] = {
    "strategy_id": 1,
    "symbol": "BTCUSDT",
    "side": "buy",
    "quantity": "1",
    "price": "1",
    "executed_at": datetime(2024, 1, 1, tzinfo=UTC),
}


@st.composite
def wild_fill_arguments(draw: st.DrawFn) -> dict[str, Any]:
    arguments = dict(_GOOD)
    for field in draw(st.sets(st.sampled_from(sorted(FILL_FIELDS)), min_size=1, max_size=4)):
        arguments[field] = draw(
            {
                "strategy_id": wild_ids,
                "backtest_id": wild_ids,
                "symbol": wild_text,
                "side": st.one_of(st.sampled_from(["buy", "sell", "BUY", "hold"]), wild_text),
                "type": wild_text,
                "quantity": wild_numbers,
                "price": wild_numbers,
                "fee": wild_numbers,
                "pnl": wild_numbers,
                "executed_at": wild_times,
                "status": st.one_of(
                    st.sampled_from(["filled", "partially_filled", "x"]), wild_text
                ),
                "metadata": wild_metadata,
                "external_id": wild_text,
            }[field]
        )
    return arguments


@given(wild_fill_arguments())
@settings(max_examples=400, deadline=None)
def test_fill_is_made_or_refused_naming_a_field(arguments: dict[str, Any]) -> None:
    try:
        fill = Fill(**arguments)
    except InvalidValue as exc:
        assert exc.field in FILL_FIELDS
        assert str(exc).startswith(f"{exc.field}: ")
        return
    assert fill.quantity > 0 and fill.price >= 0
    assert fill.executed_at.tzinfo is UTC


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.Runner, Database]]:
    """One database shared by the examples; the loop lives as long as it does."""
    path = Path(tmp_path_factory.mktemp("wild")) / "wild.sqlite3"
    with asyncio.Runner() as runner:
        db = Database(f"sqlite+aiosqlite:///{path}")
        runner.run(db.open())
        try:
            runner.run(db.migrate())
            assert runner.run(db.strategies.create(name="wild")).id == 1
            yield runner, db
        finally:
            runner.run(db.aclose())


@given(
    st.lists(
        st.tuples(wild_fill_arguments(), st.sampled_from([1, 1, 1, 2, 9_999_999])),
        min_size=1,
        max_size=15,
    )
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_what_is_accepted_reads_back_equal_and_the_writer_lives_on(
    stored: tuple[asyncio.Runner, Database], drawn: list[tuple[dict[str, Any], int]]
) -> None:
    runner, db = stored

    async def ingest() -> list[tuple[Fill, int]]:
        accepted: list[tuple[Fill, int]] = []
        async with db.writer(max_latency=0) as writer:
            for arguments, strategy_id in drawn:
                # Strategy 1 exists; 2 and 9_999_999 do not, so those fills must be refused.
                arguments.update(strategy_id=strategy_id, backtest_id=None, external_id=None)
                try:
                    fill = Fill(**arguments)
                except InvalidValue:
                    with pytest.raises(InvalidValue):
                        await writer.submit(arguments)  # type: ignore[arg-type]
                    continue
                if strategy_id != 1:
                    with pytest.raises(FillRejected, match=f"strategy_id={strategy_id}"):
                        await writer.submit(fill, wait=True)
                    continue
                await writer.submit(fill, wait=True)
                accepted.append((fill, await _newest_id(db)))
            await writer.submit(Fill(**_GOOD), wait=True)  # still alive after all of that
        return accepted

    for fill, trade_id in runner.run(ingest()):
        trade = runner.run(db.trades.get(trade_id))
        assert (trade.symbol, trade.side, trade.type, trade.status) == (
            fill.symbol, fill.side, fill.type, fill.status,
        )  # fmt: skip
        assert (trade.quantity, trade.price, trade.fee, trade.pnl) == (
            fill.quantity, fill.price, fill.fee, fill.pnl,
        )  # fmt: skip
        assert trade.executed_at == fill.executed_at
        assert trade.metadata == fill.metadata


async def _newest_id(db: Database) -> int:
    from sqlalchemy import func, select

    from quantflow_async.store.schema import trades

    async with db.engine.connect() as conn:
        return int(await conn.scalar(select(func.max(trades.c.id))) or 0)


@given(name=wild_text, config=wild_metadata, description=wild_text)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_strategies_store_exactly_or_refuse_clearly(
    stored: tuple[asyncio.Runner, Database], name: Any, config: Any, description: Any
) -> None:
    runner, db = stored
    try:
        created = runner.run(
            db.strategies.create(name=name, config=config, description=description)
        )
    except InvalidValue as exc:
        assert exc.field in {"name", "config", "description"}
        return
    except QuantFlowError as exc:  # a name drawn twice
        assert "already exists" in str(exc)
        return
    assert runner.run(db.strategies.get(created.id)) == created
    # As JSON keeps it: a tuple comes back a list (documented).
    assert created.config == json.loads(json.dumps(config or {}))
    assert created.description == description


@given(st.integers(min_value=-3, max_value=10**20))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_ids_that_do_not_exist_are_named(stored: tuple[asyncio.Runner, Database], key: int) -> None:
    runner, db = stored
    assume(key != 1)
    with pytest.raises((InvalidValue, QuantFlowError), match=str(key)):
        runner.run(db.backtests.get(key))


cli_words = st.one_of(
    st.sampled_from(
        ["migrate", "count-trades", "--backtest-id", "--symbol", "--database-url", "-v", "--help"]
    ),
    st.text(max_size=15),
    st.sampled_from(
        [
            "sqlite+aiosqlite:////no/such/dir/x.db",
            "nonsense://",
            "postgresql+asyncpg://u:secret@127.0.0.1:1/x",
            "-1",
            "NaN",
        ]
    ),
)


@given(st.lists(cli_words, max_size=5))
@settings(max_examples=60, deadline=None)
def test_cli_never_shows_a_traceback(argv: list[str]) -> None:
    assume("\x00" not in "".join(argv))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(
                ["--database-url", "sqlite+aiosqlite:////nonexistent-dir/q.sqlite3", *argv]
            )
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    assert code in (0, 1, 2)
    assert "Traceback" not in err.getvalue()


def test_cli_never_prints_the_database_password(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+asyncpg://trader:s3cret-pw@127.0.0.1:1/none"
    assert cli.main(["--database-url", url, "-v", "count-trades"]) == 1
    captured = capsys.readouterr()
    assert "s3cret-pw" not in captured.out + captured.err
    assert "quantflow: error:" in captured.err


def test_decimal_with_sixty_digits_is_refused_not_rounded() -> None:
    with pytest.raises(InvalidValue, match="38 digits"):
        Fill(
            strategy_id=1,
            symbol="X",
            side="buy",
            quantity=Decimal("1" * 60),
            price=1,
            executed_at=datetime.now(UTC),
        )

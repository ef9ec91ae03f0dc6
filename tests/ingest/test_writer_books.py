"""The writer's books balance: after it stops, whatever the faults, every accepted fill is in
exactly one of stored, `rejected` and `unwritten`, and `stats()` agrees with what is stored."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from quantflow_async import Database, Fill, Settings, WriterFailed, WriterOptions
from quantflow_async.ingest.isolation import RowsRefused, store_isolating

from ..conftest import BACKENDS, T0, make_fill

# -- batch isolation, over a fake store ------------------------------------------------------


class FakeStore:
    """Refuses any batch holding a bad fill; can name the 'orphans' among them in bulk."""

    def __init__(self, bad: set[str], orphans: set[str]) -> None:
        self.bad = bad | orphans
        self.orphans = orphans
        self.stored: list[str] = []
        self.calls = 0

    async def store(self, fills: Sequence[Fill]) -> int:
        self.calls += 1
        names = [fill.symbol for fill in fills]
        if self.bad.intersection(names):
            raise RowsRefused("a trigger said no")
        self.stored.extend(names)
        return len(names)

    async def find_refused(self, fills: Sequence[Fill]) -> dict[int, str]:
        return {i: "no such backtest" for i, f in enumerate(fills) if f.symbol in self.orphans}


def _named(count: int) -> list[Fill]:
    return [make_fill(1, n, symbol=f"S{n}") for n in range(count)]


@given(
    size=st.integers(min_value=1, max_value=300),
    data=st.data(),
)
@settings(max_examples=200, deadline=None)
def test_isolation_settles_every_fill_exactly_once(size: int, data: st.DataObject) -> None:
    fills = _named(size)
    names = [fill.symbol for fill in fills]
    bad = set(data.draw(st.lists(st.sampled_from(names), max_size=8)))
    orphans = set(data.draw(st.lists(st.sampled_from(names), max_size=50))) - bad
    store = FakeStore(bad, orphans)
    committed: list[int] = []
    refused: dict[int, str] = {}

    def on_committed(indexes: Sequence[int], inserted: int) -> None:
        assert inserted == len(indexes)
        committed.extend(indexes)

    def on_refused(index: int, reason: str) -> None:
        assert index not in refused
        refused[index] = reason

    asyncio.run(store_isolating(store, fills, on_committed, on_refused))
    assert sorted(committed + list(refused)) == list(range(size))
    assert {names[i] for i in refused} == bad | orphans
    assert sorted(store.stored) == sorted(names[i] for i in committed)
    assert all(refused[i] == "no such backtest" for i in refused if names[i] in orphans)
    # Orphans cost one query, not a split each; other refusals a bisection each.
    assert store.calls <= 2 + 2 * len(bad) * max(1, size.bit_length())


def test_bulk_refusals_leave_one_store_for_the_rest() -> None:
    fills = _named(2000)
    store = FakeStore(bad=set(), orphans={fill.symbol for fill in fills[::2]})
    asyncio.run(store_isolating(store, fills, lambda i, n: None, lambda i, r: None))
    assert store.calls == 2
    assert len(store.stored) == 1000


# -- the real writer, under random schedules of real faults -----------------------------------

KINDS = ["ok", "ok", "ok", "no_id", "again", "refused", "orphan", "fatal", "kill", "flush"]


async def _install_triggers(db: Database) -> None:
    """REFUSED: a row the database refuses. FATAL: a row whose insert fails with an error that
    is not about the row's data, so the writer stops."""
    async with db.engine.begin() as conn:
        if db.engine.dialect.name == "sqlite":
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON trades WHEN NEW.symbol = 'REFUSED' "
                    "BEGIN SELECT RAISE(ABORT, 'symbol REFUSED is not tradable'); END"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER explode BEFORE INSERT ON trades WHEN NEW.symbol = 'FATAL' "
                    "BEGIN SELECT json('{'); END"
                )
            )
            return
        await conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                "IF NEW.symbol = 'REFUSED' THEN RAISE EXCEPTION 'not tradable' "
                "USING ERRCODE = 'check_violation'; END IF; "
                "IF NEW.symbol = 'FATAL' THEN RAISE EXCEPTION 'internal' "
                "USING ERRCODE = 'internal_error'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON trades "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )


@pytest.fixture(params=BACKENDS)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[asyncio.Runner, Database]]:
    """One database for all examples; each example has a strategy of its own."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('books')) / 'books.sqlite3'}"
    else:
        url = str(request.getfixturevalue("postgres_database_url"))
    retries = WriterOptions(retry_attempts=10, retry_initial_delay=0.01, retry_max_delay=0.05)
    with asyncio.Runner() as runner:
        db = Database(settings=Settings(database_url=url, writer=retries))
        runner.run(db.open())
        try:
            runner.run(db.migrate())
            runner.run(_install_triggers(db))
            yield runner, db
        finally:
            runner.run(db.aclose())


async def _kill_connection(db: Database, pid: int | None) -> None:
    if pid is None:
        return
    if db.engine.dialect.name == "sqlite":
        with contextlib.suppress(ProcessLookupError):  # a worker that already ended
            os.kill(pid, signal.SIGKILL)
        return
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def _play(db: Database, schedule: list[str]) -> None:
    strategy = await db.strategies.create(name=f"books-{os.urandom(6).hex()}")
    backtest = await db.backtests.create(
        strategy_id=strategy.id,
        name="b",
        start_date=T0,
        end_date=T0 + timedelta(days=1),
        initial_capital=1,
    )
    accepted: list[Fill] = []
    accepted_ok: list[Fill] = []
    repeated: list[Fill] = []
    failed: WriterFailed | None = None
    n = 0
    try:
        async with db.writer(batch_size=7, max_latency=0.001, max_queue=50) as writer:
            for kind in schedule:
                n += 1
                if kind == "kill":
                    await _kill_connection(db, writer.connection_pid)
                    continue
                if kind == "flush":
                    await writer.flush()
                    continue
                if kind == "again":
                    if accepted_ok:  # a venue re-delivering a fill it sent before
                        await writer.submit(accepted_ok[-1])
                        repeated.append(accepted_ok[-1])
                    continue
                symbol = {"refused": "REFUSED", "fatal": "FATAL"}.get(kind, "OK")
                fill = make_fill(
                    strategy.id,
                    n,
                    symbol=symbol,
                    backtest_id=backtest.id if kind != "orphan" else backtest.id + 10_000,
                    external_id=None if kind == "no_id" else f"{strategy.id}-{n}",
                )
                await writer.submit(fill)
                accepted.append(fill)
                if kind == "ok":
                    accepted_ok.append(fill)
    except WriterFailed as exc:
        failed = exc
    stats = writer.stats()
    stored = await db.trades.list(strategy_id=strategy.id, limit=10_000)
    stored_keys = [(t.symbol, t.executed_at) for t in stored]
    rejected = [(r.fill.symbol, r.fill.executed_at) for r in writer.rejected]
    unwritten = [(f.symbol, f.executed_at) for f in writer.unwritten]
    accepted_keys = [(f.symbol, f.executed_at) for f in accepted]
    submitted_keys = accepted_keys + [(f.symbol, f.executed_at) for f in repeated]
    settled = stored_keys + rejected + unwritten

    assert len(set(stored_keys)) == len(stored_keys), "a fill was stored twice"
    assert set(settled) == set(accepted_keys), "a fill is missing from the books"
    assert not Counter(settled) - Counter(submitted_keys), "a fill is in two places"
    assert stats.written == len(stored)
    assert stats.rejected == len(rejected)
    assert stats.unwritten == len(unwritten)
    assert stats.submitted == len(submitted_keys)
    assert stats.submitted == stats.written + stats.duplicates + stats.rejected + stats.unwritten
    assert all(symbol not in ("REFUSED", "FATAL") for symbol, _ in stored_keys)
    assert (failed is not None) == ("FATAL" in {symbol for symbol, _ in accepted_keys})


@given(schedule=st.lists(st.sampled_from(KINDS), min_size=1, max_size=60))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_books_balance_under_random_faults(
    shared: tuple[asyncio.Runner, Database], schedule: list[str]
) -> None:
    runner, db = shared
    runner.run(_play(db, schedule))


def test_the_reported_mix_balances(shared: tuple[asyncio.Runner, Database]) -> None:
    """OK, REFUSED, OK, FATAL in one batch: the first OK stored, REFUSED rejected, the rest
    handed back, and the counters say so."""
    runner, db = shared
    runner.run(_play(db, ["ok", "refused", "ok", "fatal"]))

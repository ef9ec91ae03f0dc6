"""`Database`: the object a program opens once; it owns the engine and hands out repositories."""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.config import Settings, redact_url
from quantflow_async.errors import DatabaseNotOpen
from quantflow_async.ingest.writer import RejectHandler, TradeWriter
from quantflow_async.store.engine import create_engine
from quantflow_async.store.repositories import (
    BacktestRepository,
    StrategyRepository,
    TradeRepository,
)
from quantflow_async.store.repositories.orders import OrderRepository
from quantflow_async.store.repositories.sweeps import SweepRepository
from quantflow_async.worker_start import refuse_script_rerun

if TYPE_CHECKING:
    from quantflow_async.live.journal import OrderJournal

log = logging.getLogger(__name__)

_R = TypeVar("_R")


class Database:
    """An open QuantFlow database.

    The URL is the argument, else `settings.database_url`, else `QUANTFLOW_DATABASE_URL`,
    else `sqlite+aiosqlite:///./dev.sqlite3`. Use it as an async context manager, or call
    `open()` and `aclose()` yourself; closing twice is fine.
    """

    def __init__(self, url: str | None = None, *, settings: Settings | None = None) -> None:
        if settings is None:
            settings = Settings.from_env(database_url=url)
        elif url is not None:
            settings = replace(settings, database_url=url)
        self.settings = settings
        self._engine: AsyncEngine | None = None
        self._strategies: StrategyRepository | None = None
        self._backtests: BacktestRepository | None = None
        self._trades: TradeRepository | None = None
        self._orders: OrderRepository | None = None
        self._sweeps: SweepRepository | None = None

    async def open(self) -> Database:
        if self._engine is not None:
            return self
        refuse_script_rerun(f"{redact_url(self.settings.database_url)} was opened")
        engine = create_engine(self.settings)
        self._engine = engine
        self._strategies = StrategyRepository(engine)
        self._backtests = BacktestRepository(engine)
        self._trades = TradeRepository(engine)
        self._orders = OrderRepository(engine)
        self._sweeps = SweepRepository(engine)
        return self

    async def aclose(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()
            log.info("closed %s", redact_url(self.settings.database_url))

    async def __aenter__(self) -> Database:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_engine", None) is not None:
            _warn(
                f"Database {redact_url(self.settings.database_url)} was never closed; "
                "use `async with Database(...)` or `await db.aclose()`",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise DatabaseNotOpen("the Database is not open; use `async with Database(...) as db`")
        return self._engine

    def _opened(self, repository: _R | None) -> _R:
        if repository is None or self._engine is None:
            raise DatabaseNotOpen("the Database is not open; use `async with Database(...) as db`")
        return repository

    @property
    def strategies(self) -> StrategyRepository:
        return self._opened(self._strategies)

    @property
    def backtests(self) -> BacktestRepository:
        return self._opened(self._backtests)

    @property
    def trades(self) -> TradeRepository:
        return self._opened(self._trades)

    @property
    def sweeps(self) -> SweepRepository:
        """Sweeps: their record, their jobs, their rankings and counts."""
        return self._opened(self._sweeps)

    @property
    def orders(self) -> OrderRepository:
        """The order journal's orders, events, positions and balances (reads)."""
        return self._opened(self._orders)

    async def migrate(self) -> str | None:
        """Bring the schema to the newest revision (Alembic `upgrade head`); the revision it
        was at before, None for a database no migration had touched. Migrating a schema at
        the newest revision changes nothing."""
        # Alembic loads here, not with the database: most processes never migrate.
        from quantflow_async.store.migrations import upgrade_to_head

        return await upgrade_to_head(self.engine)

    def writer(
        self,
        *,
        batch_size: int | None = None,
        max_latency: float | None = None,
        max_queue: int | None = None,
        commit_timeout: float | None = None,
        on_reject: RejectHandler | None = None,
    ) -> TradeWriter:
        """A TradeWriter on this database; use it as `async with db.writer() as writer:`.

        Options not given come from `settings.writer`; see `WriterOptions`.
        """
        given: dict[str, Any] = {
            "batch_size": batch_size,
            "max_latency": max_latency,
            "max_queue": max_queue,
            "commit_timeout": commit_timeout,
        }
        options = replace(
            self.settings.writer,
            **{name: value for name, value in given.items() if value is not None},
        )
        return TradeWriter(self.engine, self.settings, options, on_reject=on_reject)

    def journal(
        self,
        *,
        strategy_id: int,
        venue: str,
        batch_size: int | None = None,
        max_latency: float | None = None,
    ) -> OrderJournal:
        """The order journal of a strategy on a venue: `async with db.journal(...) as j:`.

        Events are committed in batches of up to `batch_size` (default 1000) at the latest
        `max_latency` seconds (default 0.02) after they were recorded; retries, queue size and
        commit timeout come from `settings.writer`.
        """
        from quantflow_async.live.journal import OrderJournal

        options = replace(
            self.settings.writer,
            batch_size=1000 if batch_size is None else batch_size,
            max_latency=0.02 if max_latency is None else max_latency,
        )
        return OrderJournal(
            self.engine, strategy_id=strategy_id, venue=venue, options=options,
            settings=self.settings,
        )  # fmt: skip

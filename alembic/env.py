"""Alembic environment (async template).

Run by the `alembic` command, it opens its own engine from QUANTFLOW_DATABASE_URL.
Run by `Database.migrate()`, it reuses the connection handed in through
`config.attributes["connection"]`, so the library and its tests share one engine.
"""

import asyncio
import logging.config

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from quantflow_async.config import Settings
from quantflow_async.store.alembic_turn import MIGRATION_LOCK
from quantflow_async.store.engine import WRITE_OPTION, create_engine
from quantflow_async.store.schema import metadata

config = context.config
if config.config_file_name is not None and not config.attributes.get("connection"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations in one transaction, which the connection must not have begun.

    On SQLite, foreign keys are off while the migrations run: a batch-mode rebuild drops and
    re-creates a table, and with foreign keys on, dropping a parent table would delete its
    children through ON DELETE CASCADE. They are checked before the commit instead.
    """
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _set_foreign_keys(connection, on=False)
    try:
        # Begun before configure(), so Alembic joins this transaction instead of committing
        # its own; SQLite's DDL is transactional once SQLAlchemy emits BEGIN (engine.py).
        with connection.begin():
            if connection.dialect.name == "postgresql":
                _wait_for_other_migrations(connection)
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=sqlite,
                compare_type=True,
                transactional_ddl=True,
            )
            with context.begin_transaction():
                # Read in the migrations' own transaction: what Database.migrate() returns.
                heads = context.get_context().get_current_heads()  # several if branched
                config.attributes["revision_before"] = ", ".join(heads) or None
                context.run_migrations()
            if sqlite:
                _check_foreign_keys(connection)
    finally:
        if sqlite:
            _set_foreign_keys(connection, on=True)


def _wait_for_other_migrations(connection: Connection) -> None:
    """On PostgreSQL, wait until no other migration of the database runs (SQLite's BEGIN
    IMMEDIATE, from the write option, does the same there). Read committed, whatever the
    database's default: each statement then sees what the migration before this one
    committed, where a snapshot taken at the wait would not."""
    connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})


def _set_foreign_keys(connection: Connection, *, on: bool) -> None:
    # The pragma is a no-op inside a transaction, so it goes straight to the driver,
    # before SQLAlchemy begins one.
    if connection.in_transaction():
        raise RuntimeError("migrations need a connection that has not begun a transaction")
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
    finally:
        cursor.close()


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"the migration left {len(broken)} rows with broken foreign keys")


async def run_async_migrations() -> None:
    url = config.attributes.get("database_url") or Settings.from_env().database_url
    engine = create_engine(Settings(database_url=url))
    try:
        async with engine.connect() as connection:
            # A write transaction from its first statement (BEGIN IMMEDIATE on SQLite), as the
            # library's migrate() takes it: a deferred BEGIN would read the schema first and
            # then fail with "database is locked" if a writer committed in between.
            connection = await connection.execution_options(**{WRITE_OPTION: True})
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    url = config.attributes.get("database_url") or Settings.from_env().database_url
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif (connection := config.attributes.get("connection")) is not None:
    do_run_migrations(connection)
else:
    asyncio.run(run_async_migrations())

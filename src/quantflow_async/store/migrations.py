"""Running the Alembic migrations from the library, on a connection the caller already holds."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from quantflow_async.errors import MigrationError
from quantflow_async.store.alembic_turn import alembic_turn
from quantflow_async.store.driver_errors import describe, raise_masked_cancellation
from quantflow_async.store.engine import WRITE_OPTION

log = logging.getLogger(__name__)


def script_location() -> Path:
    """The migration scripts: inside the installed wheel, else the source checkout's alembic/."""
    packaged = Path(str(resources.files("quantflow_async"))) / "_alembic"
    if (packaged / "env.py").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "alembic"
    if (checkout / "env.py").is_file():
        return checkout
    raise MigrationError("the Alembic scripts are missing from this installation")


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationError("the migration scripts define no head revision")
    return head


async def upgrade_to_head(engine: AsyncEngine, config: Config | None = None) -> str | None:
    """Bring the schema to the head revision in one write transaction (begun by env.py); the
    revision it was at before, as env.py read it in that transaction (None for a database no
    migration had touched; the heads joined by ", " where a branched history left several)."""
    config = config or alembic_config()

    def upgrade(connection: Connection) -> str | None:
        config.attributes["connection"] = connection
        config.attributes.pop("revision_before", None)  # left by an earlier upgrade
        command.upgrade(config, "head")
        before: str | None = config.attributes.get("revision_before")  # read by env.py
        return before

    try:
        async with alembic_turn(), engine.connect() as connection:
            connection = await connection.execution_options(**{WRITE_OPTION: True})
            before = await connection.run_sync(upgrade)
    except MigrationError:
        raise
    except Exception as exc:
        raise_masked_cancellation(exc)
        raise MigrationError(f"migration to head failed: {describe(exc)}") from exc
    log.info("schema is at revision %s", head_revision())
    return before

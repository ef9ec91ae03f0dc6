"""A module that makes a Database when imported, as a program may keep one at module level;
a spawned process imports it to find its target."""

from __future__ import annotations

import sys

from quantflow_async import Database

URL = "sqlite+aiosqlite:///module-level-never-opened.sqlite3"
DATABASE = Database(URL)


def exit_with_url_length() -> None:
    sys.exit(len(DATABASE.settings.database_url))

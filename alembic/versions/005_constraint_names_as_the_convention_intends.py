"""constraint names as the naming convention intends

Revisions 001-003 gave their CHECK constraints full names, and the naming convention added
its prefix a second time (ck_trades_ck_trades_side_known). This revision renames them to
ck_trades_side_known and so on; PostgreSQL renames in place, SQLite rebuilds each of the
three tables (batch mode), keeping every row.

Revision ID: 005
Revises: 004
Create Date: 2026-11-27
"""

from collections.abc import Callable, Sequence

from alembic import op

revision: str = "005"
down_revision: str | None = "004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The CHECK constraints as 001-003 made them: table -> short name -> condition.
CHECKS = {
    "strategies": {
        "status_known": "status IN ('inactive', 'active', 'paused', 'archived')",
        "name_not_empty": "length(name) > 0",
    },
    "backtests": {
        "status_known": "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')",
        "start_before_end": "start_date < end_date",
        "capital_positive": "CAST(initial_capital AS NUMERIC) > 0",
    },
    "trades": {
        "side_known": "side IN ('buy', 'sell')",
        "status_known": "status IN ('filled', 'partially_filled', 'cancelled')",
        "quantity_positive": "CAST(quantity AS NUMERIC) > 0",
        "price_not_negative": "CAST(price AS NUMERIC) >= 0",
        "symbol_not_empty": "length(symbol) > 0",
    },
}


def intended(table: str, short: str) -> str:
    return f"ck_{table}_{short}"


def doubled(table: str, short: str) -> str:
    return f"ck_{table}_{intended(table, short)}"


def upgrade() -> None:
    _rename(old=doubled, new=intended)


def downgrade() -> None:
    _rename(old=intended, new=doubled)


def _rename(*, old: Callable[[str, str], str], new: Callable[[str, str], str]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        for table, checks in CHECKS.items():
            for short in checks:
                op.execute(
                    f"ALTER TABLE {table} RENAME CONSTRAINT {old(table, short)} "
                    f"TO {new(table, short)}"
                )
        return
    # SQLite cannot rename a constraint: each table is rebuilt with the new names. op.f()
    # marks a name as final, so the naming convention is not applied to it a second time.
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table, recreate="always") as batch:
            for short, condition in checks.items():
                batch.drop_constraint(op.f(old(table, short)), type_="check")
                batch.create_check_constraint(op.f(new(table, short)), condition)

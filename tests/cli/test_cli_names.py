"""The library's names and limits the command's help shows agree with the library's own.

`quantflow --help` and each command's help must not import the modules that define them
(numpy, SQLAlchemy and the analysis stack come with those), so the command keeps copies.
"""

from __future__ import annotations

import importlib

import pytest

from quantflow_async import config
from quantflow_async.analysis import FORMATS
from quantflow_async.backtest import STRATEGIES
from quantflow_async.cli import app, backtest, trades
from quantflow_async.store.repositories.trades import MAX_PAGE


def test_the_strategy_names_are_the_built_in_strategies_in_their_order() -> None:
    assert backtest.STRATEGY_NAMES == tuple(STRATEGIES)


def test_the_export_formats_are_the_analysis_formats() -> None:
    assert trades.FORMATS == FORMATS


def test_the_largest_page_of_trades_is_the_repositorys() -> None:
    assert trades.MAX_PAGE == MAX_PAGE


def test_the_database_url_variable_and_default_are_the_configurations() -> None:
    assert (app.DATABASE_URL_ENV, app.DEFAULT_DATABASE_URL) == (
        config.DATABASE_URL_ENV,
        config.DEFAULT_DATABASE_URL,
    )


@pytest.mark.parametrize("module", sorted({command.module for command in app.COMMANDS.values()}))
def test_each_module_registers_the_commands_listed_for_it_with_their_summaries(
    module: str,
) -> None:
    parser = app.Parser(prog="quantflow")
    commands = parser.add_subparsers(parser_class=app.Parser)
    importlib.import_module(f"quantflow_async.cli.{module}").register(commands)
    registered = {name: command.description for name, command in commands.choices.items()}
    listed = {name: c.summary for name, c in app.COMMANDS.items() if c.module == module}
    assert registered == listed

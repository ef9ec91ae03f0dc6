"""The parser of `quantflow` and its one rule: a user mistake is one line on stderr, no traceback.

Options common to every command (`--database-url`, `-v`) are accepted before or after the
command's name. A command module registers its verbs with `add_command`; a group of verbs
(`quantflow backtest run ...`) is a command whose parser gets subcommands of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any, NoReturn

from quantflow_async import __version__
from quantflow_async.config import DATABASE_URL_ENV, DEFAULT_DATABASE_URL, Settings
from quantflow_async.errors import QuantFlowError

Handler = Callable[[argparse.Namespace], None]
DatabaseCommand = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line that says where the help is."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("quantflow").strip()
        see = f"quantflow help {command}".strip()
        self.exit(2, f"{self.prog}: error: {message} (see `{see}`)\n")


def _common_options(*, in_command: bool) -> Parser:
    """--database-url and -v; a command's copy leaves them unset unless given after it."""
    options = Parser(add_help=False)
    unset = argparse.SUPPRESS if in_command else None
    options.add_argument(
        "--database-url",
        default=unset,
        help=f"database URL (default: ${DATABASE_URL_ENV}, else {DEFAULT_DATABASE_URL})",
    )
    options.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=unset if in_command else False,
        help="log what the library does",
    )
    return options


def add_command(
    commands: argparse._SubParsersAction[Parser], name: str, help: str, handler: Handler | None
) -> Parser:
    """A verb of `quantflow` (or of a group), accepting the common options too."""
    parser = commands.add_parser(
        name, help=help, description=help, parents=[_common_options(in_command=True)]
    )
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def on_database(command: DatabaseCommand, *, creates_database: bool) -> Handler:
    """A handler that runs `command` with the Settings the options and environment give.

    A command that only reads (`creates_database=False`) never creates a SQLite file.
    """

    def handle(args: argparse.Namespace) -> None:
        settings = Settings.from_env(database_url=args.database_url)
        if not creates_database:
            settings = replace(settings, create_sqlite_file=False)
        asyncio.run(command(settings, args))

    return handle


def build_parser() -> Parser:
    from quantflow_async.cli import (
        backtest,
        backtests,
        bars,
        live,
        orders,
        report,
        store_commands,
        strategies,
        sweep,
        trades,
        venue,
    )

    parser = Parser(
        prog="quantflow",
        description="QuantFlow's trade store: migrations and queries.",
        parents=[_common_options(in_command=False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    helper = add_command(commands, "help", "show the help of quantflow or of one command", None)
    helper.add_argument("topic", nargs="*", metavar="COMMAND", help="e.g. migrate")
    helper.set_defaults(handler=lambda args: _show_help(parser, args.topic))
    store_commands.register(commands)
    for group in (
        strategies,
        backtests,
        backtest,
        sweep,
        trades,
        orders,
        report,
        bars,
        venue,
        live,
    ):
        group.register(commands)
    return parser


def _show_help(parser: Parser, topic: Sequence[str]) -> None:
    """Print the help of `quantflow TOPIC...`, the way `quantflow TOPIC... --help` does."""
    parser.parse_args([*topic, "--help"])


def main(argv: Sequence[str] | None = None) -> int:
    """Run `quantflow` with `argv` (default: sys.argv[1:]); return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler: Handler = args.handler
    try:
        handler(args)
    except BrokenPipeError:
        # The reader went away (`quantflow trades list | head -1`): stop quietly, as other
        # tools do, and keep the interpreter from failing again on flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (QuantFlowError, ValueError, OSError) as exc:
        return _fail(str(exc), status=1)
    except KeyboardInterrupt:
        return _fail("interrupted", status=130)
    return 0


def _fail(message: str, *, status: int) -> int:
    one_line = " ".join(message.split())
    print(f"quantflow: error: {one_line}", file=sys.stderr)
    return status

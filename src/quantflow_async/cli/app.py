"""The parser of `quantflow` and its one rule: a user mistake is one line on stderr, no traceback.

Options common to every command (`--database-url`, `-v`) are accepted before or after the
command's name. A command module registers its verbs with `add_command`; a group of verbs
(`quantflow backtest run ...`) is a command whose parser gets subcommands of its own. Only the
modules of the commands a command line names are imported (`COMMANDS`), so `quantflow --help`
loads none of them.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple, NoReturn

from quantflow_async import __version__
from quantflow_async.errors import QuantFlowError

if TYPE_CHECKING:
    from quantflow_async.config import Settings

    DatabaseCommand = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]]

Handler = Callable[[argparse.Namespace], None]

# `quantflow_async.config`'s, repeated for the help of --database-url: importing config costs
# `quantflow --help` more than all the rest of its work (a test checks the two agree).
DATABASE_URL_ENV: Final = "QUANTFLOW_DATABASE_URL"
DEFAULT_DATABASE_URL: Final = "sqlite+aiosqlite:///./dev.sqlite3"


class Command(NamedTuple):
    module: str
    """The module of `quantflow_async.cli` whose `register` adds the command."""
    summary: str
    """Its line in `quantflow --help`, which its own help starts with."""


COMMANDS: Final = {
    "migrate": Command(
        "store_commands",
        "create or upgrade the schema (Alembic head); creates a SQLite file if needed",
    ),
    "count-trades": Command("store_commands", "print how many trades are stored"),
    "strategies": Command("strategies", "list, show and create strategies"),
    "backtests": Command("backtests", "list, show and delete stored backtests"),
    "backtest": Command("backtest", "run a backtest and store it"),
    "sweep": Command(
        "sweep",
        "run a strategy over a grid of parameters and one or more bars files in worker "
        "processes, store every backtest, and show the best configs "
        "(on a database `quantflow migrate` made)",
    ),
    "sweeps": Command(
        "sweeps", "list stored sweeps, or show one: its backtests by status, best configs, failures"
    ),
    "trades": Command("trades", "list stored trades or export them"),
    "orders": Command("orders", "list and show the orders the journal holds"),
    "positions": Command(
        "orders",
        "net positions per strategy, venue and symbol, then the latest balance of each asset "
        "per venue (--venue narrows both; balances belong to a venue, not a strategy)",
    ),
    "report": Command(
        "report",
        "draw a backtest's price and trades, equity curve and drawdowns, as a picture or an "
        "HTML page to zoom and pan (analysis extra)",
    ),
    "bars": Command("bars", "make bars to try things on"),
    "venue": Command("venue", "run a trading venue"),
    "live": Command("live", "trade a strategy live through the order journal"),
}
"""The commands of `quantflow`, in the order its help lists them (a module's side by side)."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line that says where the help is."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("quantflow").strip()
        see = f"quantflow help {command}".strip()
        self.exit(2, f"{self.prog}: error: {message} (see `{see}`)\n")


@functools.cache  # one parent for every command: making a parser is most of `--help`'s work
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


class _AnyWord(dict[str, Parser]):
    """The verbs of a command with a default verb: every word is a valid choice."""

    def __contains__(self, word: object) -> bool:
        return True


class _VerbsOrDefault(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Verbs whose first word, when it names none of them, is the default verb's first
    argument: `quantflow sweep STRATEGY ...` runs `sweep run STRATEGY ...`."""

    default_verb = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.choices = _AnyWord()  # checked here, in __call__, instead

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if values and values[0] not in self._name_parser_map:
            values = [self.default_verb, *values]
        super().__call__(parser, namespace, values, option_string)


def add_verbs(parser: Parser, *, default: str) -> argparse._SubParsersAction[Parser]:
    """Verbs of `parser` (add them with `add_command`) where any other first word goes to the
    verb `default`: `quantflow sweep resume 7` and `quantflow sweep STRATEGY ...` side by side."""
    verbs = parser.add_subparsers(
        dest="verb", required=True, metavar="VERB", parser_class=Parser, action=_VerbsOrDefault
    )
    verbs.default_verb = default  # type: ignore[attr-defined]
    return verbs


def on_database(command: DatabaseCommand, *, creates_database: bool) -> Handler:
    """A handler that runs `command` with the Settings the options and environment give.

    A command that only reads (`creates_database=False`) never creates a SQLite file.
    """

    def handle(args: argparse.Namespace) -> None:
        import asyncio
        from dataclasses import replace

        from quantflow_async.config import Settings

        settings = Settings.from_env(database_url=args.database_url)
        if not creates_database:
            settings = replace(settings, create_sqlite_file=False)
        asyncio.run(command(settings, args))

    return handle


class _Quantflow(Parser):
    """The parser of `quantflow` itself: it adds its commands when it is given a command line.

    The commands that line names are added in full; every other one only by name and summary,
    without importing its module (each module brings the imports its commands run on).
    """

    commands_added = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if not self.commands_added:
            self.commands_added = True
            _add_commands(self, sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)


def build_parser() -> Parser:
    """The parser of `quantflow`; its commands are added by its first parse (or `_add_commands`)."""
    parser = _Quantflow(
        prog="quantflow",
        description="QuantFlow's trade store: migrations and queries.",
        parents=[_common_options(in_command=False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _add_commands(parser: Parser, named: Sequence[str]) -> None:
    """`help` and `COMMANDS`; the modules of those in `named` register theirs in full."""
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    helper = add_command(commands, "help", "show the help of quantflow or of one command", None)
    helper.add_argument("topic", nargs="*", metavar="COMMAND", help="e.g. migrate")
    helper.set_defaults(handler=lambda args: _show_help(parser, args.topic))
    wanted = {COMMANDS[word].module for word in named if word in COMMANDS}
    registered: set[str] = set()
    for name, command in COMMANDS.items():
        if command.module not in wanted:
            # listed only: a line that runs this command names it, so it would be added in full
            commands.add_parser(name, help=command.summary, add_help=False)
        elif command.module not in registered:
            importlib.import_module(f"quantflow_async.cli.{command.module}").register(commands)
            registered.add(command.module)


def _show_help(parser: Parser, topic: Sequence[str]) -> None:
    """Print the help of `quantflow TOPIC...`, the way `quantflow TOPIC... --help` does."""
    parser.parse_args([*topic, "--help"])


def main(argv: Sequence[str] | None = None) -> int:
    """Run `quantflow` with `argv` (default: sys.argv[1:]); return the exit status."""
    args = build_parser().parse_args(argv)
    import logging  # only here: `--help` and a usage mistake have exited by now

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

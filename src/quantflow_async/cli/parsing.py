"""The pieces every command module builds its verbs with, apart from `app.py` (which imports
the command modules): the table of commands, the parser class, `add_command`, `add_group` for a
command's verbs, `add_verbs` for a group with a default verb, `add_output_option`, and
`on_database` for a handler that runs on the database.

Options common to every command (`--database-url`, `-v`) are accepted before or after the
command's name: each command's parser has them as a parent.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Container, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple, NoReturn

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

    default_verb: str | None = None
    """Set by `add_verbs`: the verb that an option of its own, given first, belongs to."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self.default_verb is not None and args is not None:
            args = self._with_default_verb(list(args))
        return super().parse_known_args(args, namespace)

    def _with_default_verb(self, args: list[str]) -> list[str]:
        """`args` with the default verb before the first option that is not this parser's:
        `quantflow sweep --data a.csv sma_cross` is `quantflow sweep run --data a.csv ...`."""
        index = 0
        while index < len(args) and args[index].startswith("-") and args[index] != "--":
            action = self._own_option(args[index].partition("=")[0])
            if action is None:
                return [*args[:index], str(self.default_verb), *args[index:]]
            index += 1 if "=" in args[index] or action.nargs == 0 else 2
        return args

    def _own_option(self, word: str) -> argparse.Action | None:
        """The option of this parser `word` names, whole or (as argparse allows) a prefix of
        one long option alone; None for anything else, and for a whole option of the default
        verb (`--data` is run's, not short for `--database-url`)."""
        action = self._option_string_actions.get(word)
        if action is not None or word in self._default_verb_options():
            return action
        if self.allow_abbrev and word.startswith("--"):
            found = {a for name, a in self._option_string_actions.items() if name.startswith(word)}
            action = found.pop() if len(found) == 1 else None
        return action

    def _default_verb_options(self) -> Container[str]:
        for action in self._actions:
            if isinstance(action, _VerbsOrDefault):
                verb = action._name_parser_map.get(str(self.default_verb))
                if verb is not None:
                    options: Container[str] = verb._option_string_actions
                    return options
        return ()

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("quantflow").strip()
        see = f"quantflow help {command}".strip()
        self.exit(2, f"{self.prog}: error: {message} (see `{see}`)\n")


@functools.cache  # one parent for every command: making a parser is most of `--help`'s work
def common_options(*, in_command: bool) -> Parser:
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
        name, help=help, description=help, parents=[common_options(in_command=True)]
    )
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def add_group(
    commands: argparse._SubParsersAction[Parser], name: str
) -> argparse._SubParsersAction[Parser]:
    """The verbs of command `name` of `quantflow` (`quantflow NAME VERB ...`), one of which
    must be given; the command's help is its COMMANDS summary."""
    group = add_command(commands, name, COMMANDS[name].summary, None)
    return group.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=Parser)


def add_output_option(command: Parser, what: str) -> None:
    """The required `-o/--output FILE`, a Path: `what` the command writes there, followed by how
    the file is written (analysis/_files.py)."""
    command.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="FILE",
        help=f"{what}; replaced if it exists, keeping its mode (a link is followed, a FIFO or "
        "device written into)",
    )


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
    parser.default_verb = default
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

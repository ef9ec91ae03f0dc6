"""The parser of `quantflow` and its one rule: a user mistake is one line on stderr, no traceback.

A command module registers its verbs with the pieces of `parsing.py` (which never imports this
module); a group of verbs (`quantflow backtest run ...`) is a command whose parser gets
subcommands of its own. Only the modules of the commands a command line names are imported
(`COMMANDS`), so `quantflow --help` loads none of them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from quantflow_async import __version__

# Still importable from here: the pieces of `parsing.py` a command module builds with.
from quantflow_async.cli.parsing import COMMANDS as COMMANDS
from quantflow_async.cli.parsing import DATABASE_URL_ENV as DATABASE_URL_ENV
from quantflow_async.cli.parsing import DEFAULT_DATABASE_URL as DEFAULT_DATABASE_URL
from quantflow_async.cli.parsing import Command as Command
from quantflow_async.cli.parsing import Handler as Handler
from quantflow_async.cli.parsing import Parser as Parser
from quantflow_async.cli.parsing import add_command as add_command
from quantflow_async.cli.parsing import add_verbs as add_verbs
from quantflow_async.cli.parsing import common_options
from quantflow_async.cli.parsing import on_database as on_database
from quantflow_async.collector import collect_less_often, keep_what_is_loaded
from quantflow_async.errors import QuantFlowError


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
        parents=[common_options(in_command=False)],
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
    """Run `quantflow` with `argv` (default: sys.argv[1:]); return the exit status.

    Without `argv` this is the `quantflow` program, a process of its own: a sweep then
    starts its workers from a fork server warmed as the command begins
    (backtest/fork_server.py), and the garbage collector runs less often (collector.py).
    Called with `argv` from another program, which keeps its process after the command,
    workers are spawned fresh, as the library's default, and its collector is left alone.
    """
    own_process = argv is None
    if own_process:
        collect_less_often()  # the process is the command's alone (collector.py)
    try:
        return _run(build_parser().parse_args(argv), own_process)
    finally:
        if own_process:
            keep_what_is_loaded()  # the interpreter's last collection then walks nothing


def _run(args: argparse.Namespace, own_process: bool) -> int:
    args.own_process = own_process
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

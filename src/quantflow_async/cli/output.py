"""What the commands print: a table on a terminal, tab-separated lines when piped, JSON with
`--json`, and progress bars on stderr when it is a terminal. Rich is imported only to draw."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import sys
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import fields, is_dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from quantflow_async.cli.parsing import Handler, on_database
from quantflow_async.config import Settings
from quantflow_async.errors import MissingExtra, QuantFlowError

if TYPE_CHECKING:
    from quantflow_async.records import Backtest

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]]


class CommandError(QuantFlowError):
    """A mistake a command found itself (an extra not installed); printed as one line."""


def reading(command: Command) -> Handler:
    """The handler of a command on an existing database: it never creates a SQLite file, and a
    missing optional package is one line naming the extra to install."""

    async def run(settings: Settings, args: argparse.Namespace) -> None:
        try:
            await command(settings, args)
        except MissingExtra as exc:
            raise CommandError(str(exc)) from exc

    return on_database(run, creates_database=False)


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


# -- option values ----------------------------------------------------------------------------


def json_object(text: str) -> dict[str, Any]:
    """An argparse type: a JSON object given inline, or read from a file as `@path`."""
    value = json_value(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"{_source(text)} must be a JSON object ({{...}}), got {type(value).__name__}"
        )
    return value


def json_grid(text: str) -> dict[str, Any] | list[dict[str, Any]]:
    """An argparse type: a sweep's grid, a JSON object of each parameter's values or a JSON
    list of configs (objects), inline or from a file as `@path`."""
    value = json_value(text)
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return value
    raise argparse.ArgumentTypeError(
        f"{_source(text)} must be a JSON object of each parameter's values or a non-empty list "
        f"of configs (objects), got {type(value).__name__}"
    )


def _source(text: str) -> str:
    return text[1:] if text.startswith("@") else "the value"


def json_value(text: str) -> Any:
    """JSON given inline, or read from a file as `@path`; ArgumentTypeError saying why not."""
    source = "the value"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise argparse.ArgumentTypeError(f"cannot read {source}: {reason}") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"{source} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            """write an object such as '{"fast": 10, "slow": 30}' or @config.json"""
        ) from exc
    return value


def instant(text: str) -> datetime:
    """An argparse type: an ISO 8601 date or date-time; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or time; write e.g. 2024-01-31 or "
            "2024-01-31T09:30:00Z"
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- JSON -------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """`value` in JSON's types: Decimals as exact strings, instants as ISO 8601, records as
    objects."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return {field.name: plain(getattr(value, field.name)) for field in fields(value)}
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def print_json(value: Any) -> None:
    json.dump(plain(value), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


# -- tables -----------------------------------------------------------------------------------


def text(value: Any, *, date_only: bool = False) -> str:
    """A value as a table cell: money exact, instants to the second in UTC (`date_only`: the
    day alone, for a column of midnights), JSON compact."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, Mapping | list):
        return json.dumps(plain(value), separators=(",", ":"), ensure_ascii=False)
    return str(value)


def error_text(backtest: Backtest) -> str:
    """A failed backtest's stored error on one line: "Type: message"."""
    error = (backtest.results or {}).get("error") or {}
    message = " ".join(str(error.get("message", "")).split())
    return f"{error.get('type', 'Error')}: {message}"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and its noun, plural but for one: "1 backtest", "96 backtests"."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {plural or noun + 's'}"


def float_text(value: float) -> str:
    """At least four significant digits in plain notation, never scientific: 122200.00,
    1.235, 0.01230, 1500000000000000000000000.00 (from the shortest text of the float)."""
    if not math.isfinite(value) or value == 0:
        return "0" if value == 0 else str(value)
    magnitude = math.floor(math.log10(abs(value)))
    return format(round(Decimal(repr(value)), max(2, 3 - magnitude)), "f")


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "", empty: str = ""
) -> None:
    """A Rich table on a terminal; piped, a header line and one tab-separated line per row.

    `empty` is said on stderr, on a terminal, when there are no rows. Text columns a narrow
    terminal leaves out, to keep every number whole, are named on stderr.
    """
    days = {i for i in range(len(columns)) if _midnights(row[i] for row in rows)}
    cells = [
        [text(value, date_only=i in days).replace("\t", " ").replace("\n", " ")
         for i, value in enumerate(row)]
        for row in rows
    ]  # fmt: skip
    if not is_terminal(sys.stdout):
        for line in [list(columns), *cells]:
            print("\t".join(line))
        return
    if not cells and empty:
        print(empty, file=sys.stderr)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout)
    numeric = {i for i in range(len(columns)) if rows and all(_is_number(r[i]) for r in rows)}
    kept = _columns_that_fit(columns, cells, numeric, console.width)
    whole = _headers_fit(columns, cells, numeric, kept, console.width)
    table = Table(title=title or None, title_justify="left")
    for index in kept:
        if index in numeric:
            width = _number_width(columns, cells, index, whole_header=whole)
            table.add_column(columns[index], justify="right", width=width, overflow="fold")
        else:
            table.add_column(columns[index], overflow="fold")
    for row in cells:
        table.add_row(*(row[index] for index in kept))
    console.print(table)
    if len(kept) < len(columns):
        left_out = ", ".join(name for i, name in enumerate(columns) if i not in kept)
        print(
            f"left out to fit {console.width} columns: {left_out} "
            "(a wider terminal, or the output piped, shows every column)",
            file=sys.stderr,
        )


_NARROWEST_TEXT: Final = 8


def _columns_that_fit(
    columns: Sequence[str], cells: list[list[str]], numeric: set[int], width: int
) -> list[int]:
    """The columns to show at `width`: numbers keep every digit on one line, so text columns
    are dropped, last first, while the table would squeeze them below a few characters."""
    kept = list(range(len(columns)))

    def needed(shown: list[int]) -> int:
        digits = sum(_number_width(columns, cells, i) for i in shown if i in numeric)
        texts = sum(1 for i in shown if i not in numeric)
        return digits + texts * _NARROWEST_TEXT + 3 * len(shown) + 1

    while needed(kept) > width and any(i not in numeric for i in kept):
        kept.remove(max(i for i in kept if i not in numeric))
    return kept


def _headers_fit(
    columns: Sequence[str], cells: list[list[str]], numeric: set[int], kept: list[int], width: int
) -> bool:
    """Whether the kept columns fit at `width` with every number column's header whole."""
    needed = sum(
        _number_width(columns, cells, i, whole_header=True)
        if i in numeric
        else max([len(columns[i]), *(len(row[i]) for row in cells)])
        for i in kept
    )
    return needed + 3 * len(kept) + 1 <= width


def _number_width(
    columns: Sequence[str], cells: list[list[str]], index: int, *, whole_header: bool = False
) -> int:
    """A number column's width: its widest cell, and its header's length if `whole_header`;
    otherwise the header folds to fit (at least 6)."""
    header = len(columns[index]) if whole_header else min(len(columns[index]), 6)
    return max(header, *(len(row[index]) for row in cells))


def _midnights(values: Iterable[Any]) -> bool:
    """Whether a column's instants are all at midnight UTC (daily data), so shown as days:
    one format in a column, whatever a program reading it splits on."""
    instants = [value for value in values if value is not None]
    return bool(instants) and all(
        isinstance(value, datetime) and value.astimezone(UTC).time() == time(0)
        for value in instants
    )


def _is_number(value: Any) -> bool:
    return value is None or (
        isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    )


def print_section(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str, empty: str
) -> None:
    """A table that is one section of a longer output: without rows it is left out, piped as
    on a terminal, and `empty` is said on stderr, so no header stands with nothing under it."""
    if not rows:
        print(empty, file=sys.stderr)
        return
    print_table(columns, rows, title=title)


def say(line: str) -> None:
    """A line for the person at the terminal: on stderr, so stdout stays the output."""
    print(line, file=sys.stderr, flush=True)


def failed_runs(
    failures: Sequence[Mapping[str, Any]], failed: int, total: int, noun: str
) -> CommandError:
    """Say each of `failures` (the first of the `failed` of `total` `noun`s), and give the
    error the command ends with, which points at the whole errors."""
    for failure in failures:
        say(f"backtest {failure['backtest_id']} failed: {failure['error']}")
    return CommandError(
        f"{failed} of {counted(total, noun)} failed (the first "
        f"{len(failures)} above; `quantflow backtests show ID` gives the whole error)"
    )


def print_fields(pairs: Sequence[tuple[str, Any]], *, title: str = "") -> None:
    """One record as name/value lines: a two-column table on a terminal."""
    if not is_terminal(sys.stdout):
        for name, value in pairs:
            print(f"{name}\t{text(value)}")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None, title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in pairs:
        table.add_row(name, text(value))
    Console(file=sys.stdout).print(table)


# -- progress ---------------------------------------------------------------------------------


ProgressUpdate = Callable[..., None]
"""Moves a bar on: `update(completed=N)` or `update(advance=1)`, and the bar's own fields."""


@contextlib.contextmanager
def progress_bar(
    description: str,
    total: int | None,
    *,
    shown: Sequence[str] = (),
    remaining: bool = True,
    **fields: Any,
) -> Iterator[ProgressUpdate | None]:
    """The one progress bar of `quantflow`, on stderr when it is a terminal (else None).

    It shows `description`, the bar, done of `total` and the time taken; then a column for
    each of `shown` (Rich text such as "best {task.fields[best]}", whose `fields` start as
    given) and, when `remaining`, an estimate of the time left.
    """
    if not is_terminal(sys.stderr):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[ProgressColumn] = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(text) for text in shown),
        TimeElapsedColumn(),
    ]
    if remaining:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, console=Console(file=sys.stderr)) as bar:
        task = bar.add_task(description, total=total, **fields)
        yield functools.partial(bar.update, task)


@contextlib.contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A function to call with how much is done; it draws a bar on stderr when stderr is a
    terminal and does nothing otherwise."""
    with progress_bar(description, total) as update:
        if update is None:
            yield lambda done: None
        else:
            yield lambda done: update(completed=done)

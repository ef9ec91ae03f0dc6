"""Instants in tables: to the second in UTC, one format in a column. A column whose instants
are all at midnight (daily bars, daily snapshots) shows the days alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from quantflow_async.cli import output

MIDNIGHT = datetime(2024, 1, 1, tzinfo=UTC)


def piped(rows: list[list[object]], capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    output.print_table(["asset", "at"], rows)
    return [line.split("\t") for line in capsys.readouterr().out.splitlines()[1:]]


def test_a_midnight_beside_other_times_keeps_its_time(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [["BTC", MIDNIGHT], ["USDT", MIDNIGHT + timedelta(hours=1)], ["ETH", None]]
    assert piped(rows, capsys) == [
        ["BTC", "2024-01-01 00:00:00"],
        ["USDT", "2024-01-01 01:00:00"],
        ["ETH", ""],
    ]


def test_a_column_of_midnights_shows_the_days(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [["BTC", MIDNIGHT], ["USDT", MIDNIGHT + timedelta(days=1)], ["ETH", None]]
    assert piped(rows, capsys) == [["BTC", "2024-01-01"], ["USDT", "2024-01-02"], ["ETH", ""]]


def test_an_instant_is_shown_in_utc(capsys: pytest.CaptureFixture[str]) -> None:
    new_york = timezone(timedelta(hours=-5))
    rows = [["BTC", datetime(2023, 12, 31, 19, tzinfo=new_york)], ["ETH", MIDNIGHT]]
    assert piped(rows, capsys) == [["BTC", "2024-01-01"], ["ETH", "2024-01-01"]]


def test_one_record_s_instant_is_shown_to_the_second(capsys: pytest.CaptureFixture[str]) -> None:
    output.print_fields([("created_at", MIDNIGHT)])
    assert capsys.readouterr().out == "created_at\t2024-01-01 00:00:00\n"

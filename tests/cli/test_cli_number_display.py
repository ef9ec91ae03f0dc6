"""Numbers in tables: never in scientific notation, and never split across lines, however
narrow the terminal; text columns shrink, then go, first."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from quantflow_async.cli import output


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (122_200.0, "122200.00"),  # was 1.222e+05
        (1.23456, "1.235"),
        (-0.3395, "-0.3395"),
        (0.0123, "0.01230"),
        (3e-15, "0.000000000000003000"),
        (1.5e24, "1500000000000000000000000.00"),  # from the float's shortest text
        (0.0, "0"),
        (float("nan"), "nan"),
    ],
)
def test_a_float_is_shown_in_plain_notation_with_four_significant_digits(
    value: float, shown: str
) -> None:
    assert output.text(value) == shown


COLUMNS = ["rank", "backtest", "data", "parameters", "return_pct", "sharpe", "max_drawdown_pct"]
ROW = [1, 12_345, "BTCUSDT-hourly-2024.csv", {"fast": 10, "slow": 30}, 122_200.123, 1.2345, -12.5]


def drawn(width: int, monkeypatch: pytest.MonkeyPatch) -> str:
    screen = io.StringIO()
    monkeypatch.setattr(output, "is_terminal", lambda stream: True)
    monkeypatch.setattr("rich.console.Console", lambda file=None: Console(file=screen, width=width))
    monkeypatch.setattr(output.sys, "stdout", screen)
    output.print_table(COLUMNS, [ROW])
    return screen.getvalue()


@pytest.mark.parametrize("width", [200, 80, 60])
def test_every_number_stays_whole_on_one_line(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    table = drawn(width, monkeypatch)
    assert max(len(line) for line in table.splitlines()) <= width
    for number in ("12345", "122200.12", "1.234", "-12.50"):
        assert number in table, (number, table)


def test_text_columns_go_last_first_when_the_numbers_need_the_room(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    table = drawn(60, monkeypatch)
    assert "fast" not in table  # parameters, the last text column, went first
    said = capsys.readouterr().err
    assert said.startswith("left out to fit 60 columns: ") and "parameters" in said
    wide = drawn(200, monkeypatch)
    assert '{"fast":10,"slow":30}' in wide and "BTCUSDT-hourly-2024.csv" in wide
    assert capsys.readouterr().err == ""  # nothing left out, nothing said


def test_number_headers_stay_whole_when_the_table_has_the_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wide = drawn(200, monkeypatch)
    assert "max_drawdown_pct" in wide and "return_pct" in wide
    narrow = drawn(80, monkeypatch)  # the numbers keep their digits; the headers fold
    assert "max_drawdown_pct" not in narrow and "-12.50" in narrow

"""The paper exchange's settings: the symbol split by `live.symbols.split_symbol` (the one the
live runner uses too) and `max_volume_share`, each mistake named before anything listens.
"""

from __future__ import annotations

import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from quantflow_async.errors import InvalidValue
from quantflow_async.live.paper.config import PaperExchangeConfig
from quantflow_async.live.symbols import QUOTE_ASSETS, split_symbol
from tests.support.paper import serve_command, write_bars


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        ("BTCUSDT", ("BTC", "USDT")),
        ("BTCFDUSD", ("BTC", "FDUSD")),
        ("ETHTUSD", ("ETH", "TUSD")),
        ("ETHBTC", ("ETH", "BTC")),
        ("1INCHUSD", ("1INCH", "USD")),
    ],
)
def test_a_known_quote_suffix_splits_the_symbol(symbol: str, expected: tuple[str, str]) -> None:
    assert split_symbol(symbol) == expected


def test_quote_assets_are_tried_longest_first() -> None:
    lengths = [len(quote) for quote in QUOTE_ASSETS]
    assert lengths == sorted(lengths, reverse=True)


def test_a_named_quote_wins_over_the_known_suffixes() -> None:
    assert split_symbol("ABCXYZ", "XYZ") == ("ABC", "XYZ")
    assert split_symbol("BTCUSDT", "DT") == ("BTCUS", "DT")


@pytest.mark.parametrize("symbol", ["btcusdt", "BTC/USDT", "BTC-USDT", "ÄUSDT", "", "USDT"])
def test_a_symbol_that_is_not_upper_case_letters_and_digits_with_a_base_is_refused(
    symbol: str,
) -> None:
    with pytest.raises(InvalidValue) as error:
        split_symbol(symbol)
    assert error.value.field == "symbol"


def test_an_unknown_suffix_asks_for_the_quote() -> None:
    with pytest.raises(InvalidValue, match="--quote") as error:
        split_symbol("ABCXYZ")
    assert error.value.field == "symbol"


@pytest.mark.parametrize("quote", ["XYZ", "usdt", "BTCUSDT", ""])
def test_a_quote_the_symbol_does_not_end_with_is_refused(quote: str) -> None:
    with pytest.raises(InvalidValue) as error:
        split_symbol("BTCUSDT", quote)
    assert error.value.field == "quote"


def config(tmp_path: Path, max_volume_share: str = "1") -> PaperExchangeConfig:
    return PaperExchangeConfig.of(
        data=tmp_path / "bars.csv",
        symbol="BTCUSDT",
        state=tmp_path / "s.sqlite",
        max_volume_share=max_volume_share,
    )


def test_max_volume_share_defaults_to_one_which_fills_orders_whole(tmp_path: Path) -> None:
    made = PaperExchangeConfig.of(data="bars.csv", symbol="BTCUSDT", state="s.sqlite")
    assert (made.max_volume_share, made.limits_volume) == (Decimal(1), False)
    assert config(tmp_path, max_volume_share="0.1").limits_volume


@pytest.mark.parametrize("share", ["0", "-0.5", "1.5", "nan", "x"])
def test_a_max_volume_share_outside_zero_to_one_is_refused(tmp_path: Path, share: str) -> None:
    with pytest.raises(InvalidValue) as error:
        config(tmp_path, max_volume_share=share)
    assert error.value.field == "max_volume_share"


def test_a_bad_max_volume_share_is_one_line_and_nothing_listens(tmp_path: Path) -> None:
    data = write_bars(tmp_path / "bars.csv", [(100.0, 101.0, 99.0, 100.5)])
    command = serve_command(data, tmp_path / "s.sqlite", extra=["--max-volume-share", "2"])
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "max_volume_share" in result.stderr

"""A strategy from the user's own code: a file, a module, or an installed package, named by
a reference that finds the same class in any process; each mistake is one line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from quantflow_async.backtest import run_backtest, synthetic_bars
from quantflow_async.backtest.strategies import SmaCross, strategy_class, strategy_reference
from quantflow_async.backtest.strategy import Strategy, StrategyConfigError

MY_STRATEGY = """
from quantflow_async.backtest import Strategy

class BuyAndHold(Strategy):
    size: float = 0.5

    def next(self) -> None:
        if not self.position:
            self.buy(size=self.size)

def helper() -> None:
    pass

class NotAStrategy:
    pass
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_a_built_in_name_still_names_its_class() -> None:
    assert strategy_class("sma_cross") is SmaCross
    assert strategy_reference(SmaCross) == "sma_cross"


def test_a_class_in_a_file_runs_and_its_reference_finds_it_again(tmp_path: Path) -> None:
    path = write(tmp_path, "my_strategy.py", MY_STRATEGY)
    cls = strategy_class(f"{path}:BuyAndHold")
    assert issubclass(cls, Strategy) and cls.parameters == {"size": float}
    result = run_backtest(cls, synthetic_bars(50), {"size": 0.25})
    assert result.executions and result.config == {"size": 0.25}
    assert strategy_reference(cls) == f"{path.resolve()}:BuyAndHold"
    assert strategy_class(strategy_reference(cls)) is cls  # loaded once per process


def test_a_relative_file_path_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "strategies/mine.py", MY_STRATEGY)
    monkeypatch.chdir(tmp_path)
    cls = strategy_class("strategies/mine.py:BuyAndHold")
    assert strategy_reference(cls) == f"{tmp_path.resolve() / 'strategies/mine.py'}:BuyAndHold"


def test_a_class_in_an_importable_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "user_pkg/__init__.py", "")
    write(tmp_path, "user_pkg/rules.py", MY_STRATEGY)
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = strategy_class("user_pkg.rules:BuyAndHold")
    assert cls.__module__ == "user_pkg.rules"
    assert strategy_reference(cls) == "user_pkg.rules:BuyAndHold"


def test_an_installed_strategy_is_found_by_its_entry_point_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "their_pkg/__init__.py", MY_STRATEGY)
    write(tmp_path, "their_pkg-1.0.dist-info/METADATA", "Name: their-pkg\nVersion: 1.0\n")
    write(
        tmp_path,
        "their_pkg-1.0.dist-info/entry_points.txt",
        "[quantflow.strategies]\nhold_half = their_pkg:BuyAndHold\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert strategy_class("hold_half").__qualname__ == "BuyAndHold"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("{folder}/missing.py:BuyAndHold", "no such file: .*missing.py"),
        ("{folder}/broken.py:BuyAndHold", r"broken.py, line 3: syntax error"),
        ("{folder}/failing.py:BuyAndHold", r"failing.py failed when loaded: ZeroDivisionError"),
        ("{folder}/my_strategy.py:Missing", r"has no class 'Missing' \(it defines: BuyAndHold\)"),
        ("{folder}/my_strategy.py:helper", "is a function, not a subclass of .*Strategy"),
        ("{folder}/my_strategy.py:NotAStrategy", "is a class NotAStrategy, not a subclass"),
        ("no_such_package.rules:Thing", "no module 'no_such_package'"),
        ("{folder}/my_strategy.py:", "expected FILE.py:CLASS or package.module:CLASS"),
        ("nothing_known", r"unknown strategy 'nothing_known' \(known: bollinger, sma_cross"),
    ],
)
def test_each_mistake_is_one_line_naming_it(tmp_path: Path, reference: str, message: str) -> None:
    write(tmp_path, "my_strategy.py", MY_STRATEGY)
    write(tmp_path, "broken.py", "from quantflow_async.backtest import Strategy\n\nclass (:\n")
    write(tmp_path, "failing.py", "1 / 0\n")
    with pytest.raises(StrategyConfigError, match=message) as raised:
        strategy_class(reference.format(folder=tmp_path))
    assert "\n" not in str(raised.value)


def test_a_class_defined_inside_a_function_has_no_reference() -> None:
    class Local(Strategy):
        def next(self) -> None:
            pass

    with pytest.raises(StrategyConfigError, match="defined inside a function"):
        strategy_reference(Local)

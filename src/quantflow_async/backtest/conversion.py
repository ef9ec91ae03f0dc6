"""What a stored backtest keeps of a run: its fills, its config, its metrics and its results.

Pure functions shared by the runner (one backtest, in this process) and the sweep's worker
processes, so a backtest is stored the same way whichever of them ran it.
"""

from __future__ import annotations

import functools
import math
import traceback
from collections.abc import Iterator, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from quantflow_async.backtest.engine import BacktestResult
from quantflow_async.backtest.executions import Execution
from quantflow_async.backtest.metrics import MAX_CURVE_POINTS, downsample, drawdown_episodes
from quantflow_async.backtest.rounding import MONEY_DECIMALS, rounded, rounded_text
from quantflow_async.records import Fill, sqlite_rows
from quantflow_async.validation import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    MAX_FRACTION_DIGITS,
    MAX_JSON_BYTES,
    MAX_JSON_FLOAT,
    decimal_text,
    epoch_micros,
    plain_numbers,
)

FILL_CHUNK: Final = 2_000
"""Fills per chunk: what a worker process sends in one message, and the runner submits."""

_QUANTUM: Final = Decimal(1).scaleb(-MAX_FRACTION_DIGITS)
# The results document must fit the store's JSON limit with room for everything beside the
# curve (by_symbol grows with the symbols, the rest is a few hundred bytes).
_CURVE_BYTES: Final = MAX_JSON_BYTES - 8 * 1024
_MAX_ERROR_TEXT: Final = 4_000


def money(value: float) -> Decimal:
    """A simulated price, commission or pnl as the Decimal of its shortest repr.

    Float noise finer than the store keeps (18 digits after the point, e.g. a pnl of
    1.4e-14 left by two prices that differ in the last bit) is rounded half-even away.
    """
    number = Decimal(repr(value))
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_FRACTION_DIGITS:
        return number.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
    return number


def execution_fill(
    execution: Execution,
    *,
    strategy_id: int,
    backtest_id: int,
    price_decimals: int | None = None,
    money_decimals: int = MONEY_DECIMALS,
) -> Fill:
    """The Fill of one execution: fee = its commission, pnl = its realized pnl before
    commissions (None for an execution that only opened), a deterministic external_id.

    What is stored is rounded once, half-even: the price to `price_decimals` (None: its
    shortest repr, float noise past the store's 18 decimals rounded away), the fee and the
    pnl to `money_decimals`.
    """
    price, fee, pnl = _stored_money(execution, price_decimals, money_decimals)
    return Fill(
        strategy_id=strategy_id,
        backtest_id=backtest_id,
        symbol=execution.symbol,
        side=execution.side,
        quantity=execution.quantity,
        price=price,
        executed_at=execution.time,
        fee=fee,
        pnl=pnl,
        external_id=execution.external_id(backtest_id),
    )


def _stored_money(
    execution: Execution, price_decimals: int | None, money_decimals: int
) -> tuple[Decimal, Decimal, Decimal | None]:
    """The price, fee and pnl to store, rounded once (see `execution_fill`)."""
    pnl = execution.pnl
    return (
        _stored_price(execution.price, price_decimals),
        rounded(execution.commission, money_decimals),
        None if pnl is None else rounded(pnl, money_decimals),
    )


def _stored_price(price: float, price_decimals: int | None) -> Decimal:
    return money(price) if price_decimals is None else rounded(price, price_decimals)


# Most fills are at a bar's open, which every config run over the same bars fills at again:
# the text of the prices stored last is kept, a bounded number. Only prices above zero come
# here, so 0.0 and -0.0 (equal keys, different texts) never meet in it.
@functools.lru_cache(maxsize=1 << 16)
def _price_text(price: float, price_decimals: int | None) -> str:
    return decimal_text(_stored_price(price, price_decimals))


def fill_rows(
    result: BacktestResult, *, strategy_id: int, backtest_id: int, size: int = FILL_CHUNK
) -> Iterator[list[tuple[Any, ...]]]:
    """The run's fills as their SQLite driver rows (what `sqlite_rows(fill_chunks(...))`
    gives), `size` at a time, made without a `Fill` each: about a third of the work.

    The first fill of each symbol is made as a `Fill`, which checks the ids and the symbol.
    Every other fill is the engine's own (whole units, prices and money rounded as stored),
    and takes the quick way when its numbers are plainly within what the store keeps (below
    1e20, so at most 38 digits with 18 decimals), its quantity positive and its side one of
    ours; any other goes through `Fill` too, and so gets its clear error.
    """
    executions = result.executions
    decimals, money_decimals = result.price_decimals, result.money_decimals
    # An execution's time is its bar's: the epoch microseconds are read there, not made again.
    bar_micros = result.times
    checked: set[str] = set()
    for start in range(0, len(executions), size):
        rows = []
        for e in executions[start : start + size]:
            micros = int(bar_micros[e.bar])
            if (
                e.symbol in checked
                and (e.side == "buy" or e.side == "sell")
                and type(e.quantity) is int
                and 0 < e.quantity < _PLAINLY_STORABLE
                and 0 < e.price < _PLAINLY_STORABLE
                and abs(e.commission) < _PLAINLY_STORABLE
                and (e.pnl is None or abs(e.pnl) < _PLAINLY_STORABLE)
                and _EARLIEST_MICROS <= micros <= _LATEST_MICROS
            ):
                pnl = None if e.pnl is None else rounded_text(e.pnl, money_decimals)
                rows.append(
                    (
                        strategy_id, backtest_id, e.symbol, e.side, "market", str(e.quantity),
                        _price_text(e.price, decimals),
                        rounded_text(e.commission, money_decimals), micros, "filled",
                        None, pnl, e.external_id(backtest_id),
                    )
                )  # fmt: skip
                continue
            fill = execution_fill(
                e,
                strategy_id=strategy_id,
                backtest_id=backtest_id,
                price_decimals=decimals,
                money_decimals=money_decimals,
            )
            checked.add(fill.symbol)
            rows.append(sqlite_rows([fill])[0])
        yield rows


_PLAINLY_STORABLE: Final = 1e20
_EARLIEST_MICROS: Final = epoch_micros(EARLIEST_INSTANT)
_LATEST_MICROS: Final = epoch_micros(LATEST_INSTANT)


def fill_chunks(
    result: BacktestResult, *, strategy_id: int, backtest_id: int, size: int = FILL_CHUNK
) -> Iterator[list[Fill]]:
    """The run's fills in execution order, `size` at a time."""
    executions = result.executions
    decimals = result.price_decimals
    money_decimals = result.money_decimals
    for start in range(0, len(executions), size):
        yield [
            execution_fill(
                e,
                strategy_id=strategy_id,
                backtest_id=backtest_id,
                price_decimals=decimals,
                money_decimals=money_decimals,
            )
            for e in executions[start : start + size]
        ]


def results_document(result: BacktestResult, max_points: int = MAX_CURVE_POINTS) -> dict[str, Any]:
    """`backtests.results`: the equity curve, the per-symbol breakdown, what was left open.

    The curve is `{"time": [epoch seconds], "equity": [rounded to 0.01]}` at close of bar,
    downsampled keeping every drawdown's peak and trough, to at most `max_points` points
    and fewer if that is what fits the store's limit on a JSON document (64 KiB: about
    2,500 to 3,000 points).
    """
    curve = _fitted_curve(result, max_points)
    return {
        "equity_curve": curve,
        "equity_curve_points": len(curve["time"]),
        "bars": len(result.equity),
        "by_symbol": result.by_symbol,
        "open_position": result.position,
        "cancelled_orders": result.cancelled_orders,
    }


def error_document(error: BaseException) -> dict[str, Any]:
    """`backtests.results` of a failed backtest: the error's type, message and traceback.

    An error whose text cannot be made (its `__str__` raises) gets a message saying so: a
    backtest that failed is stored failed, whatever its error holds.
    """
    text = "".join(traceback.format_exception(error))
    try:
        message = str(error)
    except Exception as exc:
        message = f"<its text could not be made: {type(exc).__name__}: {exc}>"
    return {
        "error": {
            "type": type(error).__name__,
            "message": message[:_MAX_ERROR_TEXT],
            "traceback": text[-_MAX_ERROR_TEXT:],
        }
    }


def storable(document: Any) -> Any:
    """A copy of a metrics or results document the store takes, whatever the run left in it.

    The store keeps JSON floats below 1e16 in size and finite, and text without NUL and
    valid as UTF-8. So a float that is not finite becomes None, a larger finite one the
    string of its repr (`float()` gives it back exactly), and in text a NUL becomes the four
    characters `\\x00` and a lone surrogate its `\\udXXX` escape. Everything else is kept.
    """
    if isinstance(document, float):
        if not math.isfinite(document):
            return None
        return repr(document) if abs(document) >= MAX_JSON_FLOAT else document
    if isinstance(document, str):
        return _storable_text(document)
    if isinstance(document, Mapping):
        return {_storable_text(str(k)): storable(v) for k, v in document.items()}
    if isinstance(document, list | tuple):
        if plain_numbers(document):
            return list(document)
        return [storable(item) for item in document]
    return document


def _storable_text(text: str) -> str:
    text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _fitted_curve(result: BacktestResult, max_points: int) -> dict[str, list[Any]]:
    points = max_points
    episodes = drawdown_episodes(result.equity) if len(result.equity) > points else None
    while True:
        kept = downsample(result.equity, points, episodes=episodes)
        size = _json_size_at_most(result.times[kept], result.equity[kept])
        if size <= _CURVE_BYTES or points <= 4:
            return {
                "time": _seconds_of(result.times[kept]),
                "equity": [round(v, 2) + 0.0 for v in result.equity[kept].tolist()],
            }
        points = max(4, int(len(kept) * _CURVE_BYTES / size * 0.97))


# len('{"time":[],"equity":[]}'), the curve's JSON without its numbers and commas.
_CURVE_FRAME: Final = 23
# The longest JSON of a float: '-1.2345678901234567e-308'.
_LONGEST_FLOAT: Final = 24


def _json_size_at_most(micros: npt.NDArray[np.int64], equity: npt.NDArray[np.float64]) -> int:
    """An upper bound on the length of the curve's compact JSON, from the arrays alone.

    A time is its whole seconds' digits, and when it has a fraction, a point and the
    fraction's places: below 2**53 microseconds the float micros / 1e6 is the one nearest
    that decimal, so its repr has no more places; beyond, where the int is rounded on its
    way to a float, its 17 significant digits leave at most 7. An equity rounded to 2 places
    is at most its sign, its integer part's digits (counted after the rounding could carry)
    and 3 more; one of 1e16 or more, or not finite, any float.
    """
    whole, rest = np.divmod(micros, 1_000_000)
    places = 6 - sum((rest % 10**k == 0).astype(np.int64) for k in range(1, 6))
    fraction = np.where(np.abs(micros) >= 2**53, 8, 1 + places)
    time_chars = _digits(whole) + np.where(rest == 0, 0, fraction)
    size = np.abs(equity)
    plain = np.isfinite(size) & (size < 1e16)
    equity_chars = np.where(
        plain, (equity < 0) + _digits(np.where(plain, size, 0) + 0.01) + 3, _LONGEST_FLOAT
    )
    commas = 2 * max(len(micros) - 1, 0)
    return _CURVE_FRAME + int(time_chars.sum()) + int(equity_chars.sum()) + commas


def _digits(values: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Digits of each value's integer part, with a minus sign for a negative one."""
    magnitude = np.abs(values).astype(np.float64)
    counted: npt.NDArray[np.int64] = np.floor(np.log10(np.maximum(magnitude, 1.0))).astype(np.int64)
    return counted + 1 + (values < 0).astype(np.int64)


def _seconds_of(micros: npt.NDArray[np.int64]) -> list[int | float]:
    """Epoch seconds of each time: whole seconds as ints, others as floats."""
    whole, rest = np.divmod(micros, 1_000_000)
    seconds: list[int | float] = whole.tolist()
    for i in np.flatnonzero(rest).tolist():
        seconds[i] = int(micros[i]) / 1e6
    return seconds

"""A search space: where a search may look for each parameter, as `--space` writes it in JSON.

    {"fast": {"int": [2, 50]}, "slow": {"int": [10, 200], "step": 5},
     "k": {"float": [0.5, 3.0], "log": true}, "mode": {"choice": ["a", "b"]}, "size": 0.5}

`int` and `float` take [low, high], both included, with an optional `step` (the values are
low, low + step, ... up to high, which must be one of them) or `log: true` (sampled evenly in
the logarithm; low > 0; not with a step). `choice` takes a list of values (strings, numbers,
true/false, null). A plain value fixes the parameter: every trial gets it, none searches it.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from quantflow_async.errors import StrategyConfigError

KINDS: Final = ("int", "float", "choice")
_OPTIONS: Final = {"int": ("step", "log"), "float": ("step", "log"), "choice": ()}
_SCALARS: Final = (str, int, float, bool, type(None))


@dataclass(frozen=True, slots=True)
class IntRange:
    """Whole numbers from `low` to `high`, both included, `step` apart, or evenly in the log."""

    low: int
    high: int
    step: int = 1
    log: bool = False


@dataclass(frozen=True, slots=True)
class FloatRange:
    """Numbers from `low` to `high`: any, `step` apart, or evenly in the logarithm."""

    low: float
    high: float
    step: float | None = None
    log: bool = False


@dataclass(frozen=True, slots=True)
class Choice:
    """One of `options`, in no order."""

    options: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Fixed:
    """Not searched: every trial gets `value`."""

    value: Any


Dimension = IntRange | FloatRange | Choice | Fixed


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Each parameter's dimension, in the order the space names them."""

    dimensions: tuple[tuple[str, Dimension], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.dimensions)

    @property
    def searched(self) -> dict[str, Dimension]:
        """The dimensions a search chooses a value in (all but the fixed ones)."""
        return {name: d for name, d in self.dimensions if not isinstance(d, Fixed)}

    @property
    def fixed(self) -> dict[str, Any]:
        return {name: d.value for name, d in self.dimensions if isinstance(d, Fixed)}

    def corners(self) -> list[dict[str, Any]]:
        """Two configs at the space's ends (every range at its low, then at its high; the first
        and the last choice): what to check a strategy's parameters against before a search."""
        low = {name: _end(d, first=True) for name, d in self.dimensions}
        high = {name: _end(d, first=False) for name, d in self.dimensions}
        return [low] if low == high else [low, high]

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """A config drawn at random from the space (to probe a strategy with, not to search)."""
        return {name: _drawn(d, rng) for name, d in self.dimensions}

    def document(self) -> dict[str, Any]:
        """The space as JSON, as `parse_space` reads it."""
        return {name: _document(d) for name, d in self.dimensions}


def parse_space(document: Mapping[str, Any] | str) -> SearchSpace:
    """The space `document` (a mapping or its JSON text) describes, or StrategyConfigError
    with one line naming the parameter and what is wrong with it."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            raise StrategyConfigError("space", f"is not JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(document, Mapping):
        raise StrategyConfigError(
            "space", f"must be a JSON object of parameters, got {type(document).__name__}"
        )
    dimensions = tuple((_name(name), _dimension(name, value)) for name, value in document.items())
    if not any(not isinstance(d, Fixed) for _, d in dimensions):
        raise StrategyConfigError(
            "space",
            'has nothing to search: give a parameter a range or choices, e.g. {"int": [2, 50]}',
        )
    return SearchSpace(dimensions)


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise StrategyConfigError(
            "space", f"a parameter's name must be a non-empty string: {name!r}"
        )
    return name


def _dimension(name: str, value: Any) -> Dimension:
    if isinstance(value, _SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            raise _bad(name, f"{value} is not a number a parameter can take")
        return Fixed(value)
    if isinstance(value, list):
        raise _bad(name, 'a list is a grid\'s values; a search takes {"choice": [...]}')
    if not isinstance(value, Mapping):
        raise _bad(name, f"expected a range, choices or a value, got {type(value).__name__}")
    kinds = [kind for kind in KINDS if kind in value]
    if len(kinds) != 1:
        raise _bad(name, f"give exactly one of {', '.join(KINDS)}, got {sorted(value) or 'none'}")
    kind = kinds[0]
    unknown = sorted(set(value) - {kind, *_OPTIONS[kind]})
    if unknown:
        takes = " and ".join(_OPTIONS[kind]) or "nothing else"
        raise _bad(name, f"{unknown[0]!r} is not an option of {kind} (it takes {takes})")
    if kind == "choice":
        return _choice(name, value["choice"])
    low, high = _bounds(name, kind, value[kind])
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise _bad(name, f"log must be true or false, got {log!r}")
    step = value.get("step")
    if log and step is not None:
        raise _bad(name, "log and step do not go together: choose one")
    if log and low <= 0:
        raise _bad(name, f"a log range needs low > 0, got {low}")
    if kind == "int":
        return IntRange(int(low), int(high), _int_step(name, low, high, step), log)
    return FloatRange(float(low), float(high), _float_step(name, low, high, step), log)


def _bounds(name: str, kind: str, bounds: Any) -> tuple[float, float]:
    wanted = "whole numbers" if kind == "int" else "numbers"
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise _bad(name, f"{kind} takes [low, high], got {json.dumps(bounds)}")
    for bound in bounds:
        number = isinstance(bound, int | float) and not isinstance(bound, bool)
        if not number or (kind == "int" and not isinstance(bound, int)):
            raise _bad(name, f"{kind} takes [low, high] as {wanted}, got {json.dumps(bounds)}")
        if not math.isfinite(bound):
            raise _bad(name, f"{kind} takes finite bounds, got {bound}")
    low, high = bounds
    if low > high:
        raise _bad(name, f"low {low} is above high {high}")
    return low, high


def _int_step(name: str, low: float, high: float, step: Any) -> int:
    if step is None:
        return 1
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        raise _bad(name, f"an int range's step must be a whole number >= 1, got {step!r}")
    if (high - low) % step:
        below = int(low + (high - low) // step * step)
        raise _bad(
            name, f"high {high} is not low {low} plus whole steps of {step}: make it {below}"
        )
    return step


def _float_step(name: str, low: float, high: float, step: Any) -> float | None:
    if step is None:
        return None
    number = isinstance(step, int | float) and not isinstance(step, bool)
    if not number or not math.isfinite(step) or step <= 0:
        raise _bad(name, f"a float range's step must be a number > 0, got {step!r}")
    steps = (high - low) / step
    if abs(steps - round(steps)) > 1e-8 * max(1.0, abs(steps)):
        raise _bad(name, f"high {high} is not low {low} plus whole steps of {step}")
    return float(step)


def _choice(name: str, options: Any) -> Choice:
    if not isinstance(options, list) or not options:
        raise _bad(name, f"choice takes a non-empty list of values, got {json.dumps(options)}")
    for option in options:
        if not isinstance(option, _SCALARS):
            raise _bad(name, f"a choice is a string, number, true/false or null, got {option!r}")
    seen: list[Any] = []
    for option in options:
        if any(option == other and type(option) is type(other) for other in seen):
            raise _bad(name, f"{json.dumps(option)} is among the choices twice")
        seen.append(option)
    return Choice(tuple(options))


def _bad(name: str, reason: str) -> StrategyConfigError:
    return StrategyConfigError("space", f"{name}: {reason}")


def _end(dimension: Dimension, *, first: bool) -> Any:
    if isinstance(dimension, Fixed):
        return dimension.value
    if isinstance(dimension, Choice):
        return dimension.options[0 if first else -1]
    return dimension.low if first else dimension.high


def _document(dimension: Dimension) -> Any:
    if isinstance(dimension, Fixed):
        return dimension.value
    if isinstance(dimension, Choice):
        return {"choice": list(dimension.options)}
    kind = "int" if isinstance(dimension, IntRange) else "float"
    made: dict[str, Any] = {kind: [dimension.low, dimension.high]}
    if dimension.log:
        made["log"] = True
    elif dimension.step not in (None, 1) or isinstance(dimension, FloatRange) and dimension.step:
        made["step"] = dimension.step
    return made


def _drawn(dimension: Dimension, rng: random.Random) -> Any:
    if isinstance(dimension, Fixed):
        return dimension.value
    if isinstance(dimension, Choice):
        return rng.choice(dimension.options)
    if isinstance(dimension, IntRange):
        if dimension.log:
            drawn = math.exp(rng.uniform(math.log(dimension.low), math.log(dimension.high)))
            return min(dimension.high, max(dimension.low, round(drawn)))
        return rng.randrange(dimension.low, dimension.high + 1, dimension.step)
    if dimension.log:
        return math.exp(rng.uniform(math.log(dimension.low), math.log(dimension.high)))
    if dimension.step is not None:
        steps = round((dimension.high - dimension.low) / dimension.step)
        return dimension.low + rng.randint(0, steps) * dimension.step
    return rng.uniform(dimension.low, dimension.high)

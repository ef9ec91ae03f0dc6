"""Sweep constraints: which of a grid's configs to run, e.g. `fast < slow`.

A constraint is a callable taking a config and answering True to run it (any true value,
as Python's `if` reads it), or the text of a
safe expression over the parameters' names: numbers, strings, True/False, comparisons
(chained too), + - * / // % and **, and/or/not, parentheses. Nothing else is allowed: no
attribute access, no calls, no subscripts, no names but the parameters. The text is parsed
once (`parse_constraint`) and walked for each config; it is never given to `eval`.

An expression and each operand of its and/or/not must come out True or False: `fast`, or
`fast and slow > 20`, is refused on a config where `fast` is 5 (a number is not a yes or no),
while a parameter that is True or False (`use_stop`) may stand alone.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from quantflow_async.backtest.strategy import StrategyConfigError

Constraint = Callable[[Mapping[str, Any]], bool]

_COMPARISONS: Final[dict[type[ast.cmpop], Callable[[Any, Any], Any]]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}  # fmt: skip
_ARITHMETIC: Final[dict[type[ast.operator], Callable[[Any, Any], Any]]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}  # fmt: skip
_MAX_TEXT: Final = 1_000
_MAX_EXPONENT: Final = 1_000


class ExpressionConstraint:
    """A parsed constraint: call it with a config; `text` is what was written."""

    def __init__(self, text: str, tree: ast.expr, names: frozenset[str]) -> None:
        self.text = text
        self._tree = tree
        self.names = names

    def __call__(self, config: Mapping[str, Any]) -> bool:
        try:
            return _truth(self._tree, config)
        except _NotTrueOrFalse as exc:
            where = "" if self.text.strip() == exc.part else f"{self.text!r}: "
            raise StrategyConfigError(
                "constraint",
                f"{where}{exc.part!r} is {exc.value!r} on {dict(config)}, not True or False: "
                f"compare it (for example {_comparison(exc.part, exc.value)})",
            ) from None

    def __repr__(self) -> str:
        return f"ExpressionConstraint({self.text!r})"


def parse_constraint(text: str) -> ExpressionConstraint:
    """The constraint `text` writes, or StrategyConfigError saying what is not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise StrategyConfigError("constraint", f"expected an expression, got {text!r}")
    if len(text) > _MAX_TEXT:
        raise StrategyConfigError("constraint", f"is longer than {_MAX_TEXT} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        # Python gives no column (0) when the text ends before the expression does.
        where = f"at column {exc.offset}" if exc.offset else "at its end"
        raise StrategyConfigError(
            "constraint", f"{text!r} is not an expression: {exc.msg} {where}"
        ) from None
    names: set[str] = set()
    for node in ast.walk(tree):
        _check(node, text)
        if isinstance(node, ast.Name):
            names.add(node.id)
    return ExpressionConstraint(text, tree, frozenset(names))


def split_configs(
    configs: Sequence[dict[str, Any]], constraint: Constraint | str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the configs `constraint` keeps, the ones it excludes), each in grid order.

    A name in the expression that no config has, or an expression that fails on a config
    (1 / 0, "a" < 1), is StrategyConfigError naming it; so is excluding every config.
    """
    check = parse_constraint(constraint) if isinstance(constraint, str) else constraint
    if isinstance(check, ExpressionConstraint) and configs:
        unknown = sorted(check.names - set().union(*(config.keys() for config in configs)))
        if unknown:
            known = ", ".join(sorted(set().union(*(config.keys() for config in configs))))
            raise StrategyConfigError(
                "constraint", f"no parameter named {unknown[0]!r} (parameters: {known})"
            )
    kept: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []
    for config in configs:
        (kept if keeps(check, config) else excluded).append(config)
    if configs and not kept:
        raise StrategyConfigError(
            "constraint", f"excludes every one of the {len(configs)} configs of the grid"
        )
    return kept, excluded


def keeps(check: Constraint, config: Mapping[str, Any]) -> bool:
    """Whether `check` keeps `config`; anything it raises is StrategyConfigError naming the
    config."""
    try:
        return bool(check(config))
    except StrategyConfigError:
        raise
    except Exception as exc:
        raise StrategyConfigError(
            "constraint", f"fails on {dict(config)}: {type(exc).__name__}: {exc}"
        ) from None


def _check(node: ast.AST, text: str) -> None:
    allowed = (
        ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.Compare,
        ast.BinOp, ast.Name, ast.Load, ast.Constant, *_COMPARISONS, *_ARITHMETIC,
    )  # fmt: skip
    if not isinstance(node, allowed):
        what = {
            ast.Attribute: "attribute access", ast.Call: "calls", ast.Subscript: "subscripts",
            ast.Lambda: "lambdas",
        }.get(type(node), type(node).__name__)  # fmt: skip
        raise StrategyConfigError("constraint", f"{text!r}: {what} not allowed")
    if isinstance(node, ast.Constant) and not isinstance(node.value, int | float | str):
        raise StrategyConfigError("constraint", f"{text!r}: {node.value!r} is not allowed")


class _NotTrueOrFalse(Exception):
    def __init__(self, part: str, value: object) -> None:
        super().__init__(part, value)
        self.part = part
        self.value = value


def _comparison(part: str, value: object) -> str:
    if isinstance(value, int | float) or type(value).__module__ == "numpy":
        return f"{part} > 0"
    return f"{part} == {value!r}"


def _truth(node: ast.expr, config: Mapping[str, Any]) -> bool:
    """`node`'s value on `config`, which must be True or False (numpy's bool too)."""
    value = _value(node, config)
    if isinstance(value, bool):
        return value
    if type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"):
        return bool(value)
    raise _NotTrueOrFalse(ast.unparse(node), value)


def _value(node: ast.expr, config: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in config:
            raise StrategyConfigError("constraint", f"no parameter named {node.id!r}")
        return config[node.id]
    if isinstance(node, ast.BoolOp):
        values = (_truth(value, config) for value in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            return not _truth(node.operand, config)
        operand = _value(node.operand, config)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.Compare):
        left = _value(node.left, config)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _value(right_node, config)
            if not _COMPARISONS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, config), _value(node.right, config)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"an exponent of {right} is too large")
        return _ARITHMETIC[type(node.op)](left, right)
    raise StrategyConfigError("constraint", f"{type(node).__name__} not allowed")

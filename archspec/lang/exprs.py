"""Evaluation of spec expressions (arguments, conditions, repeat counts, label holes)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archspec.lang import ir
from archspec.lang.diagnostics import did_you_mean, error
from archspec.lang.limits import MAX_EXPR_DEPTH, MAX_INT, MAX_INT_BITS, MAX_SEQUENCE, MAX_WORK
from archspec.lang.source import Span
from archspec.lang.values import show, type_name
from archspec.ops.base import Shape


@dataclass(frozen=True)
class InShape:
    """The value of ``in``: the inferred per-sample input shape of the enclosing block."""

    shape: Shape

    def attr(self, name: str) -> Any:
        """``in.name``: a dim (None where the shape has no such dim), or KeyError for a name
        that is no attribute of ``in``."""
        rule = _IN_RULES.get(name)
        return KeyError if rule is None else rule(self.shape)


_IN_RULES: dict[str, Callable[[Shape], Any]] = {
    "shape": lambda s: s, "rank": len, "channels": lambda s: s[0] if s else None,
    "features": lambda s: s[-1] if s else None,
    "length": lambda s: s[-1] if len(s) == 2 else None,
    "tokens": lambda s: math.prod(s[:-1]) if len(s) >= 2 else None,
    "width": lambda s: s[-1] if len(s) >= 3 else None,
    "height": lambda s: s[-2] if len(s) >= 3 else None,
    "depth": lambda s: s[-3] if len(s) >= 4 else None}


IN_ATTRS = ("channels", "height", "width", "depth", "length", "features", "tokens", "shape",
            "rank")

class _TooLong(Exception):
    """A builtin's result would exceed :data:`MAX_SEQUENCE` items."""


def _range(*args: int) -> list[int]:
    """``range`` as a list, refused before it is built when it would be too long."""
    r = range(*args)
    if len(r) > MAX_SEQUENCE:
        raise _TooLong(f"a range of {len(r):,} items")
    return list(r)


# Rounding to more digits than a float or a bounded int has changes nothing; Python would still
# compute 10**ndigits, which for `round(5, -2**62)` never ends.
_ROUND_DIGITS = 400


def _round(value: Any, ndigits: int | None = None) -> Any:
    """``round``, with ``ndigits`` clamped to +-:data:`_ROUND_DIGITS` (the same result)."""
    if ndigits is None:
        return round(value)
    if isinstance(ndigits, int):
        ndigits = max(-_ROUND_DIGITS, min(_ROUND_DIGITS, ndigits))
    return round(value, ndigits)


def _sum(items: Any, start: Any = 0) -> Any:
    """``sum`` of numbers only: summing lists copies the partial result at every step."""
    if not isinstance(start, (int, float)):
        raise TypeError(f"sum adds numbers, not {type_name(start)}")
    return sum(items, start)


BUILTINS: dict[str, Callable[..., Any]] = {
    "len": len, "range": _range, "min": min, "max": max, "int": int,
    "float": float, "round": _round, "abs": abs, "sum": _sum, "bool": bool, "str": str,
    "enumerate": lambda x, start=0: [list(p) for p in enumerate(x, start)],
    "zip": lambda *a: [list(p) for p in zip(*a)], "list": list,
    "ceil": math.ceil, "floor": math.floor, "sqrt": math.sqrt,
}

_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "==": operator.eq,
    "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _weight(value: Any, seen: dict[int, int]) -> int:
    """The items of a list, nested lists' items counted as often as they appear (``seen``
    memoises shared lists, so ``[[0] * 1000] * 1000`` costs two steps to weigh)."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, (list, tuple)):
        return 0
    if id(value) not in seen:
        seen[id(value)] = len(value) + sum(_weight(v, seen) for v in value
                                           if isinstance(v, (list, tuple, str)))
    return seen[id(value)]


def _too_big(op: str, left: Any, right: Any) -> tuple[str, str] | None:
    """The code and reason why ``left op right`` would be too large, judged before computing."""
    if op == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1 \
            and right * math.log2(abs(left)) > MAX_INT_BITS:
        return "E701", f"the result has more than {MAX_INT_BITS} bits"
    if op == "*" and _is_int(right) and isinstance(left, (list, tuple, str)):
        left, right = right, left
    if op == "*" and _is_int(left) and isinstance(right, (list, tuple, str)) \
            and left * _weight(right, {}) > MAX_SEQUENCE:
        return "E702", f"the result has {left * _weight(right, {}):,} items, nested ones counted"
    if op == "%" and isinstance(left, str):
        return "E406", "`%` does not format strings in a spec"
    return None


def check_size(value: Any, span: Span) -> Any:
    """``value`` when it is within the limits, else a located E701 / E702."""
    if _is_int(value) and abs(value) > MAX_INT:
        raise error("E701", f"integer too large: more than {MAX_INT_BITS} bits", span,
                    hint=f"integers must be below 2**{MAX_INT_BITS}")
    if isinstance(value, float) and not math.isfinite(value):
        raise error("E701", f"number not finite ({value})", span,
                    hint="an expression overflowed or produced inf / nan")
    if isinstance(value, (list, tuple, str)) and len(value) > MAX_SEQUENCE:
        raise error("E702", f"{type_name(value)} of {len(value):,} items is too long", span,
                    hint=f"at most {MAX_SEQUENCE:,} items")
    return value


def _brief(value: Any) -> str:
    """``show(value)``, or only its type when that would be long."""
    text = show(value) if not isinstance(value, (list, tuple, str)) or len(value) < 20 else ""
    return text if text and len(text) <= 40 else f"a {type_name(value)}"


class Budget:
    """The expression work left to one expansion (:data:`MAX_WORK`), shared by its
    evaluations."""

    def __init__(self) -> None:
        self.used = 0

    def charge(self, value: Any, span: Span) -> None:
        """One unit for an evaluated node, plus the length of a list or string it made."""
        self.used += 1 + (len(value) if isinstance(value, (list, tuple, str)) else 0)
        if self.used > MAX_WORK:
            raise error("E707", f"more than {MAX_WORK:,} units of expression work", span,
                        hint="an expression inside a loop builds large lists or strings, or "
                             "the loops run too often")


def checked(value: Any, span: Span, budget: Budget) -> Any:
    """``value``, the result of one expression node at ``span``, checked against the size
    limits (:func:`check_size`) and charged to ``budget``."""
    if type(value) is not int or abs(value) > MAX_INT:  # a plain int in range is fine
        check_size(value, span)
    budget.charge(value, span)
    return value


class Evaluator:
    """Evaluates expressions against variables and the block input shape ``in``; ``budget``
    (one per expansion) bounds the total work."""

    def __init__(self, env: dict[str, Any], in_shape: Shape | None,
                 budget: Budget | None = None) -> None:
        self.env = env
        self.in_shape = in_shape
        self.depth = 0
        self.budget = budget or Budget()

    def __call__(self, e: ir.Node) -> Any:
        if self.depth >= MAX_EXPR_DEPTH:
            raise error("E705", f"expression nested more than {MAX_EXPR_DEPTH} deep", e.span,
                        hint="split it with variables or parameters")
        self.depth += 1
        try:
            rule = _RULES.get(type(e)) or getattr(type(self), f"_{type(e).__name__}")
            return checked(rule(self, e), e.span, self.budget)
        finally:
            self.depth -= 1

    def _Lit(self, e: ir.Lit) -> Any:
        return e.value

    def _Var(self, e: ir.Var) -> Any:
        if e.name in self.env:
            return self.env[e.name]
        names = [k for k in self.env if not k.startswith("@")]
        raise error("E401", f"unknown name `{e.name}`", e.span,
                    hint=did_you_mean(e.name, [*names, *BUILTINS]) or
                    f"names in scope: {', '.join(sorted(names)) or '(none)'}")

    def _InRef(self, e: ir.InRef) -> Any:
        if self.in_shape is None:
            raise error("E407", "`in` is not defined here", e.span,
                        hint="`in` reads the input of a block or layer, e.g. `in.channels`")
        return InShape(self.in_shape)

    def _GetAttr(self, e: ir.GetAttr) -> Any:
        obj = self(e.obj)
        value = obj.attr(e.name) if isinstance(obj, InShape) else KeyError
        if value is KeyError:
            raise error("E403", f"`{e.name}` is not an attribute of {type_name(obj)}", e.span,
                        hint=did_you_mean(e.name, IN_ATTRS) or
                        f"`in` has: {', '.join(IN_ATTRS)}")
        if value is None:
            raise error("E403", f"the input {obj.shape} has no `{e.name}`", e.span,
                        hint="`in.shape[i]` reads any dim")
        return value

    def _GetItem(self, e: ir.GetItem) -> Any:
        obj, idx = self(e.obj), self(e.index)
        try:
            return obj[idx]
        except (IndexError, KeyError, TypeError) as exc:
            raise error("E404", f"cannot index {show(obj)} with {show(idx)}: {exc}",
                        e.span, hint="indices count from 0; lists are indexed by int") from None

    def _FuncCall(self, e: ir.FuncCall) -> Any:
        fn = BUILTINS.get(e.func)
        if fn is None:
            raise error("E405", f"unknown function `{e.func}`", e.span,
                        hint=did_you_mean(e.func, BUILTINS) or
                        f"functions: {', '.join(sorted(BUILTINS))}")
        args = [self(a) for a in e.args]
        try:
            return fn(*args)
        except _TooLong as exc:
            raise error("E702", f"`{e.func}` failed: {exc}", e.span,
                        hint=f"at most {MAX_SEQUENCE:,} items") from None
        except OverflowError as exc:
            raise error("E701", f"`{e.func}` failed: {exc}", e.span,
                        hint="the value is too large or not finite") from None
        except (TypeError, ValueError) as exc:
            raise error("E406", f"`{e.func}` failed: {exc}", e.span,
                        hint="check the argument types") from None

    def _BinOp(self, e: ir.BinOp) -> Any:
        left = self(e.left)
        if e.op == "and":
            return left and self(e.right)
        if e.op == "or":
            return left or self(e.right)
        right = self(e.right)
        too_big = _too_big(e.op, left, right)
        if too_big:
            raise error(too_big[0], f"cannot compute {_brief(left)} {e.op} {_brief(right)}: "
                        f"{too_big[1]}", e.span, hint=f"integers stay below 2**{MAX_INT_BITS}, "
                        f"lists and strings within {MAX_SEQUENCE:,} items")
        try:
            return _BINOPS[e.op](left, right)
        except OverflowError as exc:
            raise error("E701", f"cannot compute {_brief(left)} {e.op} {_brief(right)}: {exc}",
                        e.span, hint="the result is too large for a float") from None
        except (TypeError, ZeroDivisionError) as exc:
            raise error("E406", f"cannot compute {show(left)} {e.op} {show(right)}: {exc}",
                        e.span, hint="check the operand types and values") from None

    def _Neg(self, e: ir.Neg) -> Any:
        v = self(e.operand)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise error("E406", f"cannot negate {show(v)}", e.span, hint="only numbers negate")
        return -v

    def _Not(self, e: ir.Not) -> Any:
        return not self(e.operand)

    def _Cond(self, e: ir.Cond) -> Any:
        return self(e.then) if self(e.cond) else self(e.other)

    def _ListExpr(self, e: ir.ListExpr) -> Any:
        return [self(i) for i in e.items]


_RULES: dict[type, Callable[[Evaluator, Any], Any]] = {
    node: getattr(Evaluator, f"_{node.__name__}") for node in ir.members(ir.Expr)}
"""The evaluation rule of each expression node class (one per member of ``ir.Expr``)."""


def check_type(value: Any, typ: str) -> Any:
    """Coerce ``value`` to a declared parameter type, or raise ``TypeError``."""
    if typ == "any":
        return value
    if typ == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = {"int": int, "float": float, "bool": bool, "str": str, "list": (list, tuple)}[typ]
    if isinstance(value, bool) and typ != "bool":
        raise TypeError(typ)
    if not isinstance(value, expected):
        raise TypeError(typ)
    return list(value) if typ == "list" else value

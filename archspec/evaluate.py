"""Evaluation of spec expressions (arguments, conditions, repeat counts, label holes)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archspec import ir
from archspec.diagnostics import did_you_mean, error
from archspec.ops.base import Shape


@dataclass(frozen=True)
class InShape:
    """The value of ``in``: the inferred per-sample input shape of the enclosing block."""

    shape: Shape

    def attr(self, name: str) -> Any:
        s = self.shape
        table = {"shape": s, "rank": len(s), "channels": s[0] if s else None,
                 "features": s[-1] if s else None, "length": s[-1] if len(s) == 2 else None,
                 "width": s[-1] if len(s) >= 3 else None,
                 "height": s[-2] if len(s) >= 3 else None,
                 "depth": s[-3] if len(s) >= 4 else None}
        return table.get(name, KeyError)


IN_ATTRS = ("channels", "height", "width", "depth", "length", "features", "shape", "rank")

BUILTINS: dict[str, Callable[..., Any]] = {
    "len": len, "range": lambda *a: list(range(*a)), "min": min, "max": max, "int": int,
    "float": float, "round": round, "abs": abs, "sum": sum, "bool": bool, "str": str,
    "enumerate": lambda x, start=0: [list(p) for p in enumerate(x, start)],
    "zip": lambda *a: [list(p) for p in zip(*a)], "list": list,
    "ceil": math.ceil, "floor": math.floor, "sqrt": math.sqrt,
}

_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "==": operator.eq,
    "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def type_name(value: Any) -> str:
    """The spec-language name of a Python value's type."""
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", tuple: "list",
            type(None): "none"}.get(type(value), type(value).__name__)


def show(value: Any) -> str:
    """A value as the user would write it in a spec."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(show, value)) + "]"
    return repr(value)


class Evaluator:
    """Evaluates expressions against variables and the block input shape ``in``."""

    def __init__(self, env: dict[str, Any], in_shape: Shape | None) -> None:
        self.env = env
        self.in_shape = in_shape

    def __call__(self, e: ir.Node) -> Any:
        method = getattr(self, f"_{type(e).__name__}")
        return method(e)

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
        try:
            return _BINOPS[e.op](left, right)
        except (TypeError, ZeroDivisionError, OverflowError) as exc:
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

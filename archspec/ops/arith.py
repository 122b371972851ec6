"""Element-wise arithmetic on per-sample shapes (no batch dim).

Binary: ``sub``, ``div``, ``maximum`` and ``minimum`` take two inputs as a DAG statement
(``y = sub(a, b)``), of equal rank with each dim equal or 1 (NumPy broadcasting, as ``mul``);
the output has the broadcast shape. Unary, shape unchanged: ``scale`` (x * factor), ``shift``
(x + value), ``pow`` (x ** exponent), ``exp``, ``log``, ``sqrt``, ``rsqrt``, ``abs``, ``neg``,
``reciprocal`` and ``clamp`` (to ``min`` and/or ``max``).

No parameters; FLOPs per output element as each op's doc says (1 for most). Category
``arithmetic``: none of the counting conventions' tools counts these ops as lowered here
(measured in tests/test_op_conventions.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pydantic import ValidationInfo, field_validator, model_validator

from archspec.ops.base import (
    POINTWISE,
    Attrs,
    Category,
    Cost,
    Ctx,
    Function,
    Module,
    NoAttrs,
    OpDef,
    Shape,
    ShapeError,
    TorchCall,
    elementwise_cost,
    function,
    module,
    numel,
    same_shape,
)
from archspec.ops.merge import broadcast
from archspec.ops.registry import register

# ------------------------------------------------------------------------ binary


def _binary_infer(op: str) -> Callable[[tuple[Shape, ...], NoAttrs], Shape]:
    """Shape rule of a binary op: exactly two inputs, broadcast as ``mul`` broadcasts."""

    def infer(inputs: tuple[Shape, ...], attrs: NoAttrs) -> Shape:
        if len(inputs) != 2:
            raise ShapeError(f"`{op}` takes two inputs, got {len(inputs)}", code="E214",
                             hint=f"y = {op}(a, b); chain two calls for more inputs")
        return broadcast(inputs, op)

    return infer


def _binary_cost(ctx: Ctx) -> Cost:
    """One operation per output element; both inputs are read."""
    n = numel(ctx.out)
    return Cost(flops=n, in_numel=sum(map(numel, ctx.inputs)), out_numel=n)


def _onnx_node(op_type: str) -> Callable[..., None]:
    """ONNX rule: one node of ``op_type`` on the op's inputs (ONNX broadcasts as NumPy)."""

    def emit(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        b.node(op_type, inputs, [output])

    return emit


def _torch_of(target: str) -> Callable[[Ctx], TorchCall]:
    """Torch rule: ``target(*inputs)``."""
    return lambda ctx: function(target)


# name, what it computes, torch target, ONNX op
_BINARY: tuple[tuple[str, str, str, str], ...] = (
    ("sub", "The difference a - b", "operator.sub", "Sub"),
    ("div", "The quotient a / b", "operator.truediv", "Div"),
    ("maximum", "The larger of a and b, element by element (torch.maximum)", "torch.maximum",
     "Max"),
    ("minimum", "The smaller of a and b, element by element (torch.minimum)", "torch.minimum",
     "Min"),
)

for _name, _what, _target, _onnx_type in _BINARY:
    register(OpDef(
        name=_name, attrs=NoAttrs, infer=_binary_infer(_name), cost=_binary_cost,
        inputs=(2, None), step=lambda ctx: POINTWISE, category=Category.ARITHMETIC,
        torch=_torch_of(_target), onnx=_onnx_node(_onnx_type),
        doc=f"{_what} of two inputs given as a DAG statement, `y = {_name}(a, b)`: equal "
            "ranks, each dim equal or 1 (broadcast as `mul`, e.g. a C x 1 x 1 statistic "
            "against a C x H x W map). Output: the broadcast shape; FLOPs: 1 per output "
            "element."))

# ------------------------------------------------------------------------ unary, constants


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"`{name}` (={value}) must be a finite number")
    return value


class ScaleAttrs(Attrs):
    factor: float

    @field_validator("factor")
    @classmethod
    def _check(cls, v: float) -> float:
        return _finite("factor", v)


class ShiftAttrs(Attrs):
    value: float

    @field_validator("value")
    @classmethod
    def _check(cls, v: float) -> float:
        return _finite("value", v)


class PowAttrs(Attrs):
    exponent: float

    @field_validator("exponent")
    @classmethod
    def _check(cls, v: float) -> float:
        return _finite("exponent", v)


class ClampAttrs(Attrs):
    min: float | None = None
    max: float | None = None

    @field_validator("min", "max")
    @classmethod
    def _check(cls, v: float | None, info: ValidationInfo) -> float | None:
        return v if v is None else _finite(info.field_name, v)

    @model_validator(mode="after")
    def _bounds(self) -> ClampAttrs:
        if self.min is None and self.max is None:
            raise ValueError("`min` and `max` are both none: give at least one bound")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` (={self.min}) must not exceed `max` (={self.max})")
        return self


def _clamp_torch(ctx: Ctx) -> Function:
    a: ClampAttrs = ctx.attrs
    return function("torch.clamp", **{k: v for k, v in (("min", a.min), ("max", a.max))
                                      if v is not None})


def _clamp_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """Clip with its optional bounds as inputs ("" for a missing lower bound)."""
    a: ClampAttrs = ctx.attrs
    low = "" if a.min is None else b.const("min", a.min)
    bounds = [low] if a.max is None else [low, b.const("max", a.max)]
    b.node("Clip", [inputs[0], *bounds], [output])


def _constant_onnx(op_type: str, attr: str) -> Callable[..., None]:
    """ONNX rule: ``op_type(x, constant)`` with the constant from attribute ``attr``."""

    def emit(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        b.node(op_type, [inputs[0], b.const(attr, getattr(ctx.attrs, attr))], [output])

    return emit


def _rsqrt_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    b.node("Sqrt", inputs, [b.tmp("sqrt")])
    b.node("Reciprocal", [b.tmp("sqrt")], [output])


def _scale_torch(ctx: Ctx) -> Module:
    return module("archspec.backends.modules.Scale", ctx.attrs.factor)


def _shift_torch(ctx: Ctx) -> Module:
    return module("archspec.backends.modules.Shift", ctx.attrs.value)


# name, attrs, positional, FLOPs per element, doc, torch rule, ONNX rule, keeps its output
# (its backward reads its own result, so a later op must not overwrite it in place)
_UNARY: tuple[tuple[str, type[Attrs], tuple[str, ...], int, str, Callable[[Ctx], TorchCall],
                    Callable[..., None], bool], ...] = (
    ("scale", ScaleAttrs, ("factor",), 1, "x * `factor`, a constant (a helper module that "
     "multiplies as hand-written code does, `x * 0.5`).", _scale_torch,
     _constant_onnx("Mul", "factor"), False),
    ("shift", ShiftAttrs, ("value",), 1, "x + `value`, a constant (a helper module that adds "
     "as hand-written code does, `x + 1.0`).", _shift_torch, _constant_onnx("Add", "value"),
     False),
    ("pow", PowAttrs, ("exponent",), 1, "x ** `exponent` (torch.pow; a fractional exponent of "
     "a negative element gives nan).",
     lambda ctx: function("torch.pow", exponent=ctx.attrs.exponent),
     _constant_onnx("Pow", "exponent"), False),
    ("exp", NoAttrs, (), 1, "e ** x (torch.exp).", _torch_of("torch.exp"), _onnx_node("Exp"),
     True),
    ("log", NoAttrs, (), 1, "ln x, the natural logarithm (torch.log; nan below 0, -inf at 0).",
     _torch_of("torch.log"), _onnx_node("Log"), False),
    ("sqrt", NoAttrs, (), 1, "sqrt(x), the square root (torch.sqrt; nan below 0).",
     _torch_of("torch.sqrt"), _onnx_node("Sqrt"), True),
    ("rsqrt", NoAttrs, (), 2, "1 / sqrt(x) (torch.rsqrt).", _torch_of("torch.rsqrt"),
     _rsqrt_onnx, True),
    ("abs", NoAttrs, (), 1, "|x| (torch.abs).", _torch_of("torch.abs"), _onnx_node("Abs"),
     False),
    ("neg", NoAttrs, (), 1, "-x (torch.neg).", _torch_of("torch.neg"), _onnx_node("Neg"),
     False),
    ("reciprocal", NoAttrs, (), 1, "1 / x (torch.reciprocal).", _torch_of("torch.reciprocal"),
     _onnx_node("Reciprocal"), True),
)

for _name, _attrs, _pos, _flops, _doc, _torch, _onnx, _keeps in _UNARY:
    register(OpDef(name=_name, attrs=_attrs, infer=same_shape, cost=elementwise_cost(_flops),
                   positional=_pos, step=lambda ctx: POINTWISE, category=Category.ARITHMETIC,
                   torch=_torch, onnx=_onnx, keeps_output=_keeps,
                   doc=f"Element-wise {_doc} Shape unchanged; FLOPs: {_flops} per element."))


def _clamp_cost(ctx: Ctx) -> Cost:
    """One comparison per bound per element."""
    bounds = (ctx.attrs.min is not None) + (ctx.attrs.max is not None)
    return elementwise_cost(bounds)(ctx)


register(OpDef(name="clamp", attrs=ClampAttrs, infer=same_shape, cost=_clamp_cost,
               positional=("min", "max"), step=lambda ctx: POINTWISE,
               category=Category.ARITHMETIC, torch=_clamp_torch, onnx=_clamp_onnx,
               doc="Element-wise clamp of x to [`min`, `max`] (torch.clamp); either bound may "
                   "be none, not both, and `min` may not exceed `max`. Shape unchanged; "
                   "FLOPs: 1 per element per bound."))

"""Element-wise activations. Output shape = input shape; FLOPs per element as documented;
no parameters except `prelu`'s learnable slopes (one, or one per channel)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from pydantic import model_validator

from archspec.ops.base import (
    MAX_CHANNELS,
    POINTWISE,
    Attrs,
    Category,
    Cost,
    Ctx,
    Module,
    NoAttrs,
    OpDef,
    Shape,
    ShapeError,
    changed,
    check_positive_float,
    check_range,
    elementwise_cost,
    fmt_shape,
    module,
    numel,
    same_shape,
)
from archspec.ops.registry import register


class LeakyAttrs(Attrs):
    slope: float = 0.01


class GeluAttrs(Attrs):
    approximate: Literal["none", "tanh"] = "none"


class SoftmaxAttrs(Attrs):
    dim: int = 0


def _module(cls_name: str, inplace: bool = False,
            **kwargs: Callable[[Any], Any]) -> Callable[[Ctx], Module]:
    """Torch rule building ``torch.nn.<cls_name>`` with kwargs computed from the attributes
    (and ``inplace=True`` where the op supports it and the backend allows it)."""

    def build(ctx: Ctx) -> Module:
        extra = {"inplace": True} if inplace and ctx.inplace else {}
        return module(f"torch.nn.{cls_name}", **{k: f(ctx.attrs) for k, f in kwargs.items()},
                      **extra)

    return build


_ACTIVATIONS: tuple[tuple[str, type[Attrs], tuple[str, ...], int, str, Any], ...] = (
    ("relu", NoAttrs, (), 1, "max(x, 0).", _module("ReLU", inplace=True)),
    ("leaky_relu", LeakyAttrs, ("slope",), 2, "x if x > 0 else `slope` * x.",
     _module("LeakyReLU", inplace=True, negative_slope=lambda a: a.slope)),
    ("sigmoid", NoAttrs, (), 4, "1 / (1 + exp(-x)).", _module("Sigmoid")),
    ("tanh", NoAttrs, (), 5, "tanh(x).", _module("Tanh")),
    ("gelu", GeluAttrs, ("approximate",), 8, "x * Phi(x); `approximate` none|tanh.",
     _module("GELU", approximate=lambda a: a.approximate)),
    ("silu", NoAttrs, (), 5, "x * sigmoid(x) (swish).", _module("SiLU")),
    ("softmax", SoftmaxAttrs, ("dim",), 3,
     "exp(x) / sum exp(x) along `dim` of the per-sample shape (0 = channels/features).",
     _module("Softmax", dim=lambda a: a.dim + 1 if a.dim >= 0 else a.dim)),
    ("relu6", NoAttrs, (), 2, "min(max(x, 0), 6).", _module("ReLU6", inplace=True)),
    ("hardsigmoid", NoAttrs, (), 4, "relu6(x + 3) / 6.", _module("Hardsigmoid", inplace=True)),
    ("hardswish", NoAttrs, (), 5, "x * relu6(x + 3) / 6.", _module("Hardswish", inplace=True)),
)


def _unary(op_type: str, **attrs: Callable[[Any], Any]) -> Callable[..., None]:
    """ONNX rule: one node of ``op_type`` with attributes computed from ours."""

    def emit(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        b.node(op_type, inputs, [output], **{k: f(ctx.attrs) for k, f in attrs.items()})

    return emit


def _gelu_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    x = inputs[0]
    if b.opset >= 20:
        b.node("Gelu", [x], [output], approximate=ctx.attrs.approximate)
        return
    half, one = b.const("half", 0.5), b.const("one", 1.0)
    if ctx.attrs.approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube, inner, scaled, t = b.tmp("cube"), b.tmp("inner"), b.tmp("scaled"), b.tmp("t")
        b.node("Pow", [x, b.const("three", 3.0)], [cube])
        b.node("Mul", [cube, b.const("c", 0.044715)], [b.tmp("c_cube")])
        b.node("Add", [x, b.tmp("c_cube")], [inner])
        b.node("Mul", [inner, b.const("k", 0.7978845608028654)], [scaled])
        b.node("Tanh", [scaled], [t])
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        t = b.tmp("erf")
        b.node("Div", [x, b.const("sqrt2", 1.4142135623730951)], [b.tmp("scaled")])
        b.node("Erf", [b.tmp("scaled")], [t])
    b.node("Add", [t, one], [b.tmp("onep")])
    b.node("Mul", [x, b.tmp("onep")], [b.tmp("xp")])
    b.node("Mul", [b.tmp("xp"), half], [output])


def _relu6_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    b.node("Clip", [inputs[0], b.const("min", 0.0), b.const("max", 6.0)], [output])


def _hardswish_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """HardSwish from opset 14; before it x * HardSigmoid(x), the same function."""
    if b.opset >= 14:
        b.node("HardSwish", inputs, [output])
        return
    b.node("HardSigmoid", inputs, [b.tmp("gate")], alpha=1.0 / 6.0, beta=0.5)
    b.node("Mul", [inputs[0], b.tmp("gate")], [output])


def _silu_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    b.node("Sigmoid", inputs, [b.tmp("sigmoid")])
    b.node("Mul", [inputs[0], b.tmp("sigmoid")], [output])


_ONNX = {
    "relu": _unary("Relu"), "leaky_relu": _unary("LeakyRelu", alpha=lambda a: a.slope),
    "sigmoid": _unary("Sigmoid"), "tanh": _unary("Tanh"), "gelu": _gelu_onnx,
    "silu": _silu_onnx, "softmax": _unary("Softmax", axis=lambda a: a.dim + 1 if a.dim >= 0
                                          else a.dim),
    "relu6": _relu6_onnx, "hardswish": _hardswish_onnx,
    "hardsigmoid": _unary("HardSigmoid", alpha=lambda a: 1.0 / 6.0, beta=lambda a: 0.5),
}


def _softmax_cost(ctx: Ctx) -> Cost:
    """3 FLOPs per element (exp, sum, divide); ``positions`` = rows, the vectors along ``dim``
    that are normalised (thop counts 3n - 1 per row of n)."""
    n = numel(ctx.out)
    return Cost(flops=3 * n, in_numel=n, out_numel=n, positions=n // ctx.x[ctx.attrs.dim])


def _softmax_infer(inputs: tuple[Shape, ...], attrs: SoftmaxAttrs) -> Shape:
    x = inputs[0]
    if not -len(x) <= attrs.dim < len(x):
        raise ShapeError(f"`softmax` dim {attrs.dim} is out of range for a {fmt_shape(x)} input",
                         hint="dims count from 0 (channels or features), after the batch")
    return x


_COST = {"softmax": _softmax_cost}
_INFER = {"softmax": _softmax_infer}

# ------------------------------------------------------------------------ tensor primitives:
# mish, elu, selu, softplus, hardtanh, quick_gelu, prelu


class EluAttrs(Attrs):
    alpha: float = 1.0


class SoftplusAttrs(Attrs):
    beta: float = 1.0
    threshold: float = 20.0

    @model_validator(mode="after")
    def _domains(self) -> SoftplusAttrs:
        check_positive_float(self, "beta")
        if not math.isfinite(self.threshold):
            raise ValueError(f"`threshold` (={self.threshold}) must be a finite number")
        return self


class HardtanhAttrs(Attrs):
    min_val: float = -1.0
    max_val: float = 1.0

    @model_validator(mode="after")
    def _bounds(self) -> HardtanhAttrs:
        if not self.min_val < self.max_val:
            raise ValueError(f"`min_val` (={self.min_val}) must be below `max_val` "
                             f"(={self.max_val})")
        return self


class PreluAttrs(Attrs):
    num_parameters: int = 1
    init: float = 0.25

    @model_validator(mode="after")
    def _count(self) -> PreluAttrs:
        check_range(self, ("num_parameters",), 1, MAX_CHANNELS)
        return self


_PRIMITIVES: tuple[tuple[str, type[Attrs], tuple[str, ...], int, str, Any], ...] = (
    ("mish", NoAttrs, (), 9, "x * tanh(softplus(x)).", _module("Mish")),
    ("elu", EluAttrs, ("alpha",), 4, "x if x > 0 else `alpha` * (exp(x) - 1).",
     _module("ELU", alpha=lambda a: a.alpha)),
    ("selu", NoAttrs, (), 5, "1.0507 * elu(x, alpha=1.6733), self-normalising.",
     _module("SELU")),
    ("softplus", SoftplusAttrs, ("beta", "threshold"), 5,
     "log(1 + exp(`beta` x)) / `beta`; x itself where `beta` x > `threshold`.",
     _module("Softplus", beta=lambda a: a.beta, threshold=lambda a: a.threshold)),
    ("hardtanh", HardtanhAttrs, ("min_val", "max_val"), 2,
     "x clamped to [`min_val`, `max_val`].",
     _module("Hardtanh", min_val=lambda a: a.min_val, max_val=lambda a: a.max_val)),
    ("quick_gelu", NoAttrs, (), 6, "x * sigmoid(1.702 x), the GELU approximation of CLIP "
     "and timm's QuickGELU (a helper module).",
     lambda ctx: module("archspec.backends.modules.QuickGELU")),
    ("prelu", PreluAttrs, ("num_parameters", "init"), 2,
     "x if x > 0 else a * x, with a learnable slope a (nn.PReLU, state_dict key "
     "`<path>.weight`): `num_parameters` 1 (one slope) or the channel count, dim 0 (one per "
     "channel), each starting at `init`. Params: `num_parameters`.",
     lambda ctx: module("torch.nn.PReLU", **changed(
         {"num_parameters": 1, "init": 0.25}, num_parameters=ctx.attrs.num_parameters,
         init=ctx.attrs.init))),
)


def _mish_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """Mish from opset 18; before it x * tanh(softplus(x)), the same function."""
    if b.opset >= 18:
        b.node("Mish", inputs, [output])
        return
    b.node("Softplus", inputs, [b.tmp("softplus")])
    b.node("Tanh", [b.tmp("softplus")], [b.tmp("tanh")])
    b.node("Mul", [inputs[0], b.tmp("tanh")], [output])


def _softplus_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """Softplus(beta x) / beta, or x where beta x > threshold (torch's linear region)."""
    x, beta = inputs[0], ctx.attrs.beta
    scaled = x
    if beta != 1.0:
        scaled = b.tmp("scaled")
        b.node("Mul", [x, b.const("beta", beta)], [scaled])
    b.node("Softplus", [scaled], [b.tmp("softplus")])
    soft = b.tmp("softplus")
    if beta != 1.0:
        soft = b.tmp("soft")
        b.node("Div", [b.tmp("softplus"), b.const("beta", beta)], [soft])
    b.node("Greater", [scaled, b.const("threshold", ctx.attrs.threshold)], [b.tmp("linear")])
    b.node("Where", [b.tmp("linear"), x, soft], [output])


def _quick_gelu_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    b.node("Mul", [inputs[0], b.const("k", 1.702)], [b.tmp("scaled")])
    b.node("Sigmoid", [b.tmp("scaled")], [b.tmp("gate")])
    b.node("Mul", [inputs[0], b.tmp("gate")], [output])


def _prelu_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """PRelu with the slopes as (C, 1, ..., 1), which broadcasts over the spatial dims."""
    slope = b.param("weight")
    if ctx.attrs.num_parameters > 1 and len(ctx.x) > 1:
        shape = [ctx.attrs.num_parameters] + [1] * (len(ctx.x) - 1)
        b.node("Reshape", [slope, b.const("slope_shape", shape, "int64")], [b.tmp("slope")])
        slope = b.tmp("slope")
    b.node("PRelu", [inputs[0], slope], [output])


def _prelu_infer(inputs: tuple[Shape, ...], attrs: PreluAttrs) -> Shape:
    x = inputs[0]
    if attrs.num_parameters not in (1, x[0]):
        raise ShapeError(f"`num_parameters` (={attrs.num_parameters}) of `prelu` must be 1 or "
                         f"the {x[0]} channels (dim 0) of the {fmt_shape(x)} input",
                         hint=f"prelu(1) learns one slope, prelu({x[0]}) one per channel")
    return x


def _prelu_cost(ctx: Ctx) -> Cost:
    """2 FLOPs per element (compare, multiply); params: the slopes."""
    n = numel(ctx.out)
    return Cost(params=ctx.attrs.num_parameters, flops=2 * n, in_numel=n, out_numel=n)


_ONNX.update({
    "mish": _mish_onnx, "elu": _unary("Elu", alpha=lambda a: a.alpha), "selu": _unary("Selu"),
    "softplus": _softplus_onnx,
    "hardtanh": lambda ctx, b, inputs, output: b.node(
        "Clip", [inputs[0], b.const("min", ctx.attrs.min_val), b.const("max", ctx.attrs.max_val)],
        [output]),
    "quick_gelu": _quick_gelu_onnx, "prelu": _prelu_onnx,
})
_COST["prelu"] = _prelu_cost
_INFER["prelu"] = _prelu_infer

# Ops whose backward reads their own output (leaky ReLU's when it runs in place): a later op
# must not overwrite it in place. ReLU6, hardsigmoid and hardswish keep their input instead.
_KEEP_OUTPUT = {"relu", "leaky_relu", "sigmoid", "tanh", "softmax"}

for _name, _attrs, _pos, _flops, _doc, _torch in _ACTIVATIONS + _PRIMITIVES:
    register(OpDef(name=_name, attrs=_attrs, infer=_INFER.get(_name, same_shape),
                   cost=_COST.get(_name, elementwise_cost(_flops)),
                   positional=_pos, category=Category(_name), torch=_torch, onnx=_ONNX[_name],
                   step=lambda ctx: POINTWISE,
                   keeps_output=_name in _KEEP_OUTPUT,
                   doc=f"{_doc} Shape unchanged; FLOPs: {_flops} per element."))

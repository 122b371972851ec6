"""Dense and shape ops: linear, flatten, dropout, stochastic depth, identity."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from archspec.ops.base import (
    GLOBAL,
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
    Step,
    changed,
    fmt_shape,
    module,
    numel,
    same_shape,
)
from archspec.ops.registry import register


class LinearAttrs(Attrs):
    out: int
    bias: bool = True

    @field_validator("out")
    @classmethod
    def _positive(cls, v: int) -> int:
        if not 1 <= v <= MAX_CHANNELS:
            raise ValueError(f"`out` (={v}) must be positive"
                             + (f" and at most {MAX_CHANNELS:,}" if v > 0 else ""))
        return v


def _linear_infer(inputs: tuple[Shape, ...], a: LinearAttrs) -> Shape:
    """(*positions, in) -> (*positions, out): the last dim is the features."""
    x = inputs[0]
    if not x:
        raise ShapeError("`linear` needs an input with a features dim, got a scalar",
                         hint="linear maps the last dim; keep one (e.g. reduce fewer dims, or "
                              "keepdim=true)", code="E304")
    return (*x[:-1], a.out)


def _linear_cost(ctx: Ctx) -> Cost:
    """Weights once per position (every index of the dims before the features). Over more
    than one dim it counts as :attr:`Category.WEIGHTED_ND` (some tools count its weights once,
    not once per position); ``positions`` is the number of positions."""
    a: LinearAttrs = ctx.attrs
    fin, positions = ctx.x[-1], numel(ctx.x[:-1])
    bias = a.out * positions if a.bias else 0
    macs = fin * a.out * positions
    return Cost(params=fin * a.out + (a.out if a.bias else 0), macs=macs, bias=bias,
                flops=2 * macs + bias, in_numel=numel(ctx.x), out_numel=numel(ctx.out),
                positions=positions,
                category=Category.WEIGHTED_ND if len(ctx.x) > 1 else None)


def _linear_torch(ctx: Ctx) -> Module:
    return module("torch.nn.Linear", ctx.x[-1], ctx.attrs.out,
                  **changed({"bias": True}, bias=ctx.attrs.bias))


def _linear_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """Gemm on a (N, in) input; MatMul by the transposed weight (and Add) over more dims."""
    weight = b.param("weight")
    if len(ctx.x) == 1:
        b.node("Gemm", [inputs[0], weight] + ([b.param("bias")] if ctx.attrs.bias else []),
               [output], transB=1)
        return
    b.node("Transpose", [weight], [b.tmp("weight_t")], perm=[1, 0])
    product = b.tmp("product") if ctx.attrs.bias else output
    b.node("MatMul", [inputs[0], b.tmp("weight_t")], [product])
    if ctx.attrs.bias:
        b.node("Add", [product, b.param("bias")], [output])


register(OpDef(name="linear", attrs=LinearAttrs, infer=_linear_infer, cost=_linear_cost,
               torch=_linear_torch, onnx=_linear_onnx, features_last=True,
               step=lambda ctx: GLOBAL if len(ctx.x) == 1 else POINTWISE,
               positional=("out", "bias"), category=Category.WEIGHTED,
               doc="Fully connected layer over the last dim (features) of a (features,) or "
                   "(*positions, features) input, e.g. tokens x features: `out` features, "
                   "`bias`. Params in*out (+out); MACs in*out per position."))


class FlattenAttrs(Attrs):
    start: int = 0
    end: int = -1


def _flatten_infer(inputs: tuple[Shape, ...], a: FlattenAttrs) -> Shape:
    x = inputs[0]
    n = len(x)
    start = a.start + n if a.start < 0 else a.start
    end = a.end + n if a.end < 0 else a.end
    if not (0 <= start <= end < n):
        raise ShapeError(f"`flatten` dims start={a.start}, end={a.end} are out of range for "
                         f"a {fmt_shape(x)} input", hint="dims count from 0, after the batch")
    return (*x[:start], numel(x[start:end + 1]), *x[end + 1:])


def _flatten_torch(ctx: Ctx) -> Module:
    a: FlattenAttrs = ctx.attrs
    start, end = (a.start + 1 if a.start >= 0 else a.start), (a.end + 1 if a.end >= 0 else a.end)
    return module("torch.nn.Flatten", *((start, end) if (start, end) != (1, -1) else ()))


def _flatten_step(ctx: Ctx) -> Step:
    """Flattening the spatial dims makes the field global; flattening channels only does not."""
    return GLOBAL if len(ctx.out) < 2 or ctx.out[1:] != ctx.x[1:] else POINTWISE


def _flatten_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    if len(ctx.out) == 1:
        b.node("Flatten", inputs, [output], axis=1)
    else:  # 0 keeps the (dynamic) batch dimension
        b.node("Reshape", [inputs[0], b.const("shape", [0, *ctx.out], "int64")], [output])


def _identity_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    b.node("Identity", inputs, [output])


register(OpDef(name="flatten", attrs=FlattenAttrs, infer=_flatten_infer, torch=_flatten_torch,
               onnx=_flatten_onnx, step=_flatten_step, category=Category.MOVE,
               fresh_output=False,
               cost=lambda ctx: Cost(in_numel=numel(ctx.x), out_numel=numel(ctx.out)),
               positional=("start", "end"),
               doc="Flatten per-sample dims `start`..`end` (0 = first dim after the batch; "
                   "default all) into one."))


class DropoutAttrs(Attrs):
    p: float = 0.5

    @field_validator("p")
    @classmethod
    def _prob(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"`p` (={v}) must be between 0 and 1")
        return v


def _passthrough(ctx: Ctx) -> Cost:
    n = numel(ctx.out)
    return Cost(in_numel=n, out_numel=n)


def _dropout_torch(ctx: Ctx) -> Module:
    return module("torch.nn.Dropout", *((ctx.attrs.p,) if ctx.attrs.p != 0.5 else ()))


register(OpDef(name="dropout", attrs=DropoutAttrs, infer=same_shape, cost=_passthrough,
               torch=_dropout_torch, onnx=_identity_onnx, fresh_output=False,
               step=lambda ctx: POINTWISE, category=Category.MOVE,
               positional=("p",), doc="Dropout with probability `p` (identity in eval)."))
class StochasticDepthAttrs(DropoutAttrs):
    p: float
    mode: Literal["row", "batch"] = "row"


def _stochastic_depth_torch(ctx: Ctx) -> Module:
    a: StochasticDepthAttrs = ctx.attrs
    return module("archspec.backends.modules.StochasticDepth", a.p, a.mode)


register(OpDef(name="stochastic_depth", attrs=StochasticDepthAttrs, infer=same_shape,
               cost=_passthrough, torch=_stochastic_depth_torch, onnx=_identity_onnx,
               fresh_output=False, step=lambda ctx: POINTWISE, category=Category.MOVE,
               positional=("p", "mode"),
               doc="Stochastic depth (torchvision.ops.stochastic_depth): while training, zeroes "
                   "the input with probability `p` per sample (`mode=\"row\"`) or for the whole "
                   "batch (`\"batch\"`) and scales the rest by 1/(1-p); identity in eval. Shape "
                   "unchanged; FLOPs 0."))
register(OpDef(name="identity", attrs=NoAttrs, infer=same_shape, cost=_passthrough,
               torch=lambda ctx: module("torch.nn.Identity"), onnx=_identity_onnx,
               fresh_output=False, step=lambda ctx: POINTWISE, category=Category.MOVE,
               doc="Passes its input through unchanged."))

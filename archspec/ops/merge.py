"""Ops that merge several inputs: add (element-wise sum), mul (broadcasting element-wise
product) and concat (along channels)."""

from __future__ import annotations

from typing import Any

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
    function,
    module,
    numel,
)
from archspec.ops.registry import register


def _add_infer(inputs: tuple[Shape, ...], attrs: NoAttrs) -> Shape:
    """Same-shape inputs, or inputs that broadcast as ``mul``'s do (a (C, 1, 1) bias, a
    (1, heads, N, N) attention bias against (G, heads, N, N) scores)."""
    if all(s == inputs[0] for s in inputs[1:]):
        return inputs[0]
    return broadcast(inputs, "add")


def _add_cost(ctx: Ctx) -> Cost:
    n = numel(ctx.out)
    return Cost(flops=n * (len(ctx.inputs) - 1), in_numel=sum(map(numel, ctx.inputs)),
                out_numel=n)


def _add_torch(ctx: Ctx) -> Function:
    # `a + b` (or `a += b` where a is free to overwrite and already has the output's shape),
    # as hand-written residual code does; profilers that patch torch.add would otherwise count
    # the spec's adds and not theirs.
    if len(ctx.inputs) == 2:
        inplace = ctx.inplace and ctx.inputs[0] == ctx.out
        return function("operator.iadd" if inplace else "operator.add")
    return function("builtins.sum", as_list=True)


def _add_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    b.node("Add" if len(inputs) == 2 else "Sum", inputs, [output])


register(OpDef(name="add", attrs=NoAttrs, infer=_add_infer, cost=_add_cost, inputs=(2, None),
               torch=_add_torch, onnx=_add_onnx, step=lambda ctx: POINTWISE,
               category=Category.ADD,
               doc="Element-wise sum of two or more inputs of one shape, or of equal rank that "
                   "broadcast as `mul`'s do (a C x 1 x 1 bias onto a C x H x W map). A "
                   "`residual`'s branch and shortcut must have the same shape. FLOPs: "
                   "(inputs - 1) per output element."))


def broadcast(shapes: tuple[Shape, ...], op: str) -> Shape:
    """The broadcast of per-sample shapes of equal rank: each dim equal or 1 (NumPy rules; the
    batch dim in front makes a rank difference misalign, so ranks must match)."""
    rank = len(shapes[0])
    if any(len(s) != rank for s in shapes):
        raise ShapeError(f"`{op}` inputs have different ranks", code="E305",
                         hint="give every input the same number of dims per sample (e.g. "
                              "C x 1 x 1 to scale a C x H x W map)")
    out = []
    for dims in zip(*shapes):
        size = max(dims)
        if any(d not in (1, size) for d in dims):
            raise ShapeError(f"`{op}` inputs do not broadcast: sizes {', '.join(map(str, dims))}"
                             " in one dim", code="E305",
                             hint="each dim must be equal across inputs or 1")
        out.append(size)
    return tuple(out)


def _mul_infer(inputs: tuple[Shape, ...], attrs: NoAttrs) -> Shape:
    return broadcast(inputs, "mul")


def _mul_cost(ctx: Ctx) -> Cost:
    n = numel(ctx.out)
    return Cost(flops=n * (len(ctx.inputs) - 1), in_numel=sum(map(numel, ctx.inputs)),
                out_numel=n)


def _mul_torch(ctx: Ctx) -> Function | Module:
    """``a * b`` as hand-written gates do (torchvision's squeeze-excitation: ``scale * input``);
    a product module for three or more inputs."""
    if len(ctx.inputs) == 2:
        return function("operator.mul")
    return module("archspec.backends.modules.Product")


def _mul_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    last = inputs[0]
    for i, other in enumerate(inputs[1:], start=1):
        out = output if i == len(inputs) - 1 else b.tmp(f"product{i}")
        b.node("Mul", [last, other], [out])
        last = out


register(OpDef(name="mul", attrs=NoAttrs, infer=_mul_infer, cost=_mul_cost, inputs=(2, None),
               torch=_mul_torch, onnx=_mul_onnx, step=lambda ctx: POINTWISE,
               category=Category.MUL,
               doc="Broadcasting element-wise product of two or more inputs of equal rank, "
                   "e.g. a C x 1 x 1 gate times a C x H x W map (squeeze-excitation). Output: "
                   "the broadcast shape; FLOPs: (inputs - 1) per output element."))


class ConcatAttrs(Attrs):
    dim: int = 0


def _concat_infer(inputs: tuple[Shape, ...], attrs: ConcatAttrs) -> Shape:
    first = inputs[0]
    d = attrs.dim + len(first) if attrs.dim < 0 else attrs.dim
    if not 0 <= d < len(first):
        raise ShapeError(f"`concat` dim {attrs.dim} is out of range for rank {len(first)}")
    for other in inputs[1:]:
        if len(other) != len(first) or any(a != b for i, (a, b) in enumerate(zip(first, other))
                                           if i != d):
            raise ShapeError(f"`concat` inputs differ outside dim {attrs.dim}", code="E305",
                             hint="every branch must keep the same spatial size; check strides "
                                  "and padding")
    return (*first[:d], sum(s[d] for s in inputs), *first[d + 1:])


def _concat_cost(ctx: Ctx) -> Cost:
    n = numel(ctx.out)
    return Cost(in_numel=n, out_numel=n)


def _concat_torch(ctx: Ctx) -> Function:
    dim = ctx.attrs.dim
    return function("torch.cat", as_list=True, dim=dim + 1 if dim >= 0 else dim)


def _concat_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    dim = ctx.attrs.dim
    b.node("Concat", inputs, [output], axis=dim + 1 if dim >= 0 else dim)


register(OpDef(name="concat", attrs=ConcatAttrs, infer=_concat_infer, cost=_concat_cost,
               torch=_concat_torch, onnx=_concat_onnx, step=lambda ctx: POINTWISE,
               inputs=(1, None), positional=("dim",), category=Category.CONCAT,
               doc="Concatenate inputs along per-sample `dim` (0 = channels)."))

"""MaxViT's windowed ops: window partition and departition of a ``(C, H, W)`` map into
``(groups, tokens, C)``, and the relative attention within each window (block attention) or
grid cell (grid attention).

MACs count the q/k/v and output projections and both attention products, as
FlopCounterMode does; ``scratch`` counts the attention matrices (groups x heads x tokens^2).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import model_validator

from archspec.ops.base import (
    GLOBAL,
    Attrs,
    Category,
    Cost,
    Ctx,
    OpDef,
    Shape,
    ShapeError,
    Step,
    check_range,
    fmt_shape,
    module,
    numel,
)
from archspec.ops.onnx_nodes import linear, reshape, transpose
from archspec.ops.registry import register
from archspec.ops.window import MAX_WINDOW

# ------------------------------------------------------------------ MaxViT partitions


class PartitionAttrs(Attrs):
    p: int

    @model_validator(mode="after")
    def _domains(self) -> PartitionAttrs:
        check_range(self, ("p",), 1, MAX_WINDOW)
        return self


def _partition_infer(inputs: tuple[Shape, ...], a: PartitionAttrs) -> Shape:
    x = inputs[0]
    if len(x) != 3:
        raise ShapeError(f"`window_partition` needs a (C, H, W) map per sample, got "
                         f"{fmt_shape(x)}", code="E303", hint="partition a 2-D feature map")
    c, h, w = x
    if h % a.p or w % a.p:
        raise ShapeError(f"`p` (={a.p}) must divide the map's height and width ({h}x{w})",
                         hint="MaxViT needs every stage's input side divisible by its partition "
                              "size: use an input side that is a multiple of 32 x p")
    return ((h // a.p) * (w // a.p), a.p * a.p, c)


def _partition_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    (c, h, w), p = ctx.x, ctx.attrs.p
    x = reshape(b, inputs[0], "split", [-1, c, h // p, p, w // p, p])
    x = transpose(b, x, "moved", [0, 2, 4, 3, 5, 1])
    b.node("Reshape", [x, b.const("shape", [-1, *ctx.out], "int64")], [output])


register(OpDef(
    name="window_partition", attrs=PartitionAttrs, infer=_partition_infer,
    cost=lambda ctx: Cost(in_numel=numel(ctx.x), out_numel=numel(ctx.out)),
    step=lambda ctx: Step(), category=Category.MOVE, positional=("p",),
    torch=lambda ctx: module("archspec.backends.modules.WindowPartition", ctx.attrs.p),
    onnx=_partition_onnx,
    doc="MaxViT's window partition (torchvision's WindowPartition) of a (C, H, W) map into "
        "(H/p * W/p, p * p, C): the `p` x `p` windows row-major, each window's pixels "
        "row-major, channels last. MaxViT's grid partition is this with p = side / grid "
        "followed by `transpose(0, 1)`. FLOPs 0."))


class DepartitionAttrs(Attrs):
    p: int
    h: int
    w: int

    @model_validator(mode="after")
    def _domains(self) -> DepartitionAttrs:
        check_range(self, ("p", "h", "w"), 1, MAX_WINDOW)
        return self


def _departition_infer(inputs: tuple[Shape, ...], a: DepartitionAttrs) -> Shape:
    x = inputs[0]
    if len(x) != 3:
        raise ShapeError(f"`window_departition` needs (windows, tokens, C) per sample, got "
                         f"{fmt_shape(x)}", code="E303", hint="departition what "
                                                              "`window_partition` made")
    g, n, c = x
    if (g, n) != (a.h * a.w, a.p * a.p):
        raise ShapeError(f"{g} windows of {n} tokens are not `h` x `w` (={a.h}x{a.w}) windows "
                         f"of `p` x `p` (={a.p}x{a.p}) tokens",
                         hint="give the partition size and the windows per column and row")
    return (c, a.h * a.p, a.w * a.p)


def _departition_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    a: DepartitionAttrs = ctx.attrs
    x = reshape(b, inputs[0], "split", [-1, a.h, a.w, a.p, a.p, ctx.x[2]])
    x = transpose(b, x, "moved", [0, 5, 1, 3, 2, 4])
    b.node("Reshape", [x, b.const("shape", [-1, *ctx.out], "int64")], [output])


register(OpDef(
    name="window_departition", attrs=DepartitionAttrs, infer=_departition_infer,
    cost=lambda ctx: Cost(in_numel=numel(ctx.x), out_numel=numel(ctx.out)),
    step=lambda ctx: Step(), category=Category.MOVE, positional=("p", "h", "w"),
    torch=lambda ctx: module("archspec.backends.modules.WindowDepartition", ctx.attrs.p,
                             ctx.attrs.h, ctx.attrs.w),
    onnx=_departition_onnx,
    doc="The inverse of `window_partition` (torchvision's WindowDepartition): (h * w, p * p, "
        "C) windows back into a (C, h * p, w * p) map, `h` x `w` windows of `p` x `p` pixels. "
        "FLOPs 0."))


# ------------------------------------------------------------------ MaxViT relative attention


class RelativeAttentionAttrs(Attrs):
    head_dim: int = 32

    @model_validator(mode="after")
    def _domains(self) -> RelativeAttentionAttrs:
        check_range(self, ("head_dim",), 1)
        return self


def _relative_infer(inputs: tuple[Shape, ...], a: RelativeAttentionAttrs) -> Shape:
    x = inputs[0]
    if len(x) != 3:
        raise ShapeError(f"`relative_attention` needs (groups, tokens, C) per sample, got "
                         f"{fmt_shape(x)}", code="E303",
                         hint="partition a map first: `window_partition(p)`")
    _, n, c = x
    if c % a.head_dim:
        raise ShapeError(f"`head_dim` (={a.head_dim}) must divide the {c} input channels",
                         hint="choose a divisor of the channel count")
    if math.isqrt(n) ** 2 != n:
        raise ShapeError(f"{n} tokens per group are not a square window",
                         hint="the relative position bias needs size x size tokens")
    return x


def _relative_cost(ctx: Ctx) -> Cost:
    """Per sample, G groups of P tokens of C channels, H = C / head_dim heads: MACs 4GPC^2
    (to_qkv, merge) + 2GP^2C (QK^T, AV); FLOPs 2 x MACs + bias adds + 5 per logit."""
    a: RelativeAttentionAttrs = ctx.attrs
    g, n, c = ctx.x
    heads, size = c // a.head_dim, math.isqrt(n)
    tokens, logits = g * n, g * heads * n * n
    macs = 4 * tokens * c * c + 2 * tokens * n * c
    return Cost(params=4 * c * c + 4 * c + (2 * size - 1) ** 2 * heads, buffers=n * n,
                macs=macs, bias=4 * tokens * c, flops=2 * macs + 4 * tokens * c + 5 * logits,
                in_numel=numel(ctx.x), out_numel=numel(ctx.out), positions=logits,
                products=2 * tokens * n * c, scratch=logits)


def _relative_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """The module's forward, node for node (RelativePositionalMultiHeadAttention)."""
    g, n, c = ctx.x
    dh = ctx.attrs.head_dim
    heads = c // dh
    qkv = linear(b, inputs[0], "to_qkv", b.param("to_qkv.bias"))
    parts = []
    for i, name in enumerate("qkv"):
        b.node("Slice", [qkv, b.const(f"{name}_start", [i * c], "int64"),
                         b.const(f"{name}_end", [(i + 1) * c], "int64"),
                         b.const("last", [-1], "int64")], [b.tmp(name)])
        split = reshape(b, b.tmp(name), f"{name}_heads", [-1, g, n, heads, dh])
        parts.append(transpose(b, split, f"{name}_t", [0, 1, 3, 2, 4]))
    q, k, v = parts
    b.node("Mul", [k, b.const("scale", c ** -0.5)], [b.tmp("k_scaled")])
    k_t = transpose(b, b.tmp("k_scaled"), "k_scaled_t", [0, 1, 2, 4, 3])
    b.node("MatMul", [q, k_t], [b.tmp("logits")])
    b.node("Gather", [b.param("relative_position_bias_table"),
                      b.param("relative_position_index")], [b.tmp("bias_nnh")], axis=0)
    bias = transpose(b, b.tmp("bias_nnh"), "bias", [2, 0, 1])
    b.node("Add", [b.tmp("logits"), bias], [b.tmp("biased")])
    b.node("Softmax", [b.tmp("biased")], [b.tmp("attn")], axis=-1)
    b.node("MatMul", [b.tmp("attn"), v], [b.tmp("mixed")])
    x = reshape(b, transpose(b, b.tmp("mixed"), "mixed_t", [0, 1, 3, 2, 4]), "tokens",
                 [-1, g, n, c])
    b.node("Transpose", [b.param("merge.weight")], [b.tmp("merge_wt")], perm=[1, 0])
    b.node("MatMul", [x, b.tmp("merge_wt")], [b.tmp("merged")])
    b.node("Add", [b.tmp("merged"), b.param("merge.bias")], [output])


register(OpDef(
    name="relative_attention", attrs=RelativeAttentionAttrs, infer=_relative_infer,
    cost=_relative_cost, step=lambda ctx: GLOBAL, category=Category.RELATIVE_ATTENTION,
    positional=("head_dim",),
    torch=lambda ctx: module("archspec.backends.modules.RelativePositionalMultiHeadAttention",
                             ctx.x[2], ctx.attrs.head_dim, ctx.x[1]),
    onnx=_relative_onnx,
    doc="MaxViT's multi-head self-attention within each group of a (groups, tokens, C) input "
        "(torchvision's RelativePositionalMultiHeadAttention), the tokens a size x size window: "
        "C / `head_dim` heads, keys scaled by C^-0.5, plus a learned relative position bias "
        "((2 size - 1)^2 x heads) read through a (tokens, tokens) index buffer. MACs 4GPC^2 + "
        "2GP^2C for G groups of P tokens; attention matrices G x heads x P^2 elements; the "
        "receptive field pass takes it as global (grid attention mixes the whole map)."))

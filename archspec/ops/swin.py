"""Swin's token reshuffles and fused block: patch merging (v1, v2) of a channels-last map, and
Swin v2's whole transformer block (window attention and MLP, each with its residual and
post-norm) as torchvision's SwinTransformerBlockV2.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import model_validator

from archspec.ops.base import (
    MAX_CHANNELS,
    Attrs,
    Category,
    Cost,
    Ctx,
    Module,
    OpDef,
    Shape,
    ShapeError,
    changed,
    check_positive_float,
    module,
    numel,
    window_step,
)
from archspec.ops.onnx_nodes import linear
from archspec.ops.registry import REGISTRY, register
from archspec.ops.swin_attention import (
    WindowAttentionAttrs,
    WindowAttrs,
    window_and_shift,
    window_attention_shape,
)
from archspec.ops.window import channels_last

# ------------------------------------------------------------------ patch merging


class PatchMergingAttrs(Attrs):
    eps: float = 1e-5

    @model_validator(mode="after")
    def _domains(self) -> PatchMergingAttrs:
        check_positive_float(self, "eps")
        return self


def make_patch_merging(v2: bool) -> OpDef:
    name = "patch_merging_v2" if v2 else "patch_merging"

    def infer(inputs: tuple[Shape, ...], a: PatchMergingAttrs) -> Shape:
        """(*G, H, W, C) -> (*G, ceil(H/2), ceil(W/2), 2C): each of the leading maps (Video
        Swin's frames) merged on its own, as torchvision's module merges ``[..., H, W, C]``."""
        x = inputs[0]
        *lead, h, w, c = x if len(x) > 3 else channels_last(name, x)
        return (*lead, -(-h // 2), -(-w // 2), 2 * c)

    def cost(ctx: Ctx) -> Cost:
        """Per output position, 4C -> 2C weights (MACs 8C^2); the LayerNorm 7 FLOPs per
        element it normalises (``positions``: 4C per output position before the reduction in
        v1, 2C after it in v2)."""
        c, positions = ctx.x[-1], numel(ctx.out[:-1])
        norm = 2 * c if v2 else 4 * c
        macs = positions * 8 * c * c
        return Cost(params=8 * c * c + 2 * norm, macs=macs,
                    flops=2 * macs + 7 * positions * norm, in_numel=numel(ctx.x),
                    out_numel=numel(ctx.out), positions=positions * norm)

    def to_torch(ctx: Ctx) -> Module:
        a: PatchMergingAttrs = ctx.attrs
        return module("archspec.backends.modules.PatchMerging", ctx.x[-1],
                      **changed({"eps": 1e-5, "v2": False}, eps=a.eps, v2=v2))

    def to_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        (h, w, _), x, rank = ctx.x[-3:], inputs[0], len(ctx.x) + 1
        if h % 2 or w % 2:
            ends = [0] * (rank - 3) + [h % 2, w % 2, 0]
            b.node("Pad", [x, b.const("pads", [0] * rank + ends, "int64")], [b.tmp("padded")])
            x = b.tmp("padded")
        parts = []
        for i, (dh, dw) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
            b.node("Slice", [x, b.const(f"start{i}", [dh, dw], "int64"),
                             b.const("end", [h + 1, w + 1], "int64"),
                             b.const("axes", [rank - 3, rank - 2], "int64"),
                             b.const("steps", [2, 2], "int64")],
                   [b.tmp(f"part{i}")])
            parts.append(b.tmp(f"part{i}"))
        b.node("Concat", parts, [b.tmp("merged")], axis=-1)
        if v2:
            x = linear(b, b.tmp("merged"), "reduction", None)
            b.node("LayerNormalization", [x, b.param("norm.weight"), b.param("norm.bias")],
                   [output], axis=-1, epsilon=ctx.attrs.eps)
            return
        b.node("LayerNormalization", [b.tmp("merged"), b.param("norm.weight"),
                                      b.param("norm.bias")], [b.tmp("normed")], axis=-1,
               epsilon=ctx.attrs.eps)
        b.node("Transpose", [b.param("reduction.weight")], [b.tmp("wt")], perm=[1, 0])
        b.node("MatMul", [b.tmp("normed"), b.tmp("wt")], [output])

    order = ("LayerNorm(4C), then" if not v2 else "") + " a 4C -> 2C linear without bias" + \
        (", then LayerNorm(2C)" if v2 else "")
    return OpDef(
        name=name, attrs=PatchMergingAttrs, infer=infer, cost=cost,
        step=lambda ctx: window_step(2, 2), torch=to_torch, onnx=to_onnx,
        category=Category.PATCH_MERGING, positional=("eps",), min_opset=17,
        doc=f"Swin {'v2' if v2 else 'v1'} patch merging (torchvision's PatchMerging"
            f"{'V2' if v2 else ''}) of a channels-last (H, W, C) map to (ceil(H/2), "
            "ceil(W/2), 2C), each map on its own where leading dims hold several (Video "
            "Swin's (T, H, W, C) frames): zero-pad to even sides, concatenate each 2x2 "
            "patch's pixels ((0,0), (1,0), (0,1), (1,1)), "
            f"{order.strip()} (LayerNorm `eps`). Params "
            f"8C^2 + {'4' if v2 else '8'}C; MACs 8C^2 per output position.")


for _v2 in (False, True):
    register(make_patch_merging(_v2))


# ------------------------------------------------------------------ Swin v2 block


class SwinBlockAttrs(WindowAttrs):
    """The MLP's width, int(C x ``mlp_ratio``), is checked by the shape rule."""

    sd: float = 0.0
    mlp_ratio: float = 4.0
    eps: float = 1e-5

    @model_validator(mode="after")
    def _block_domains(self) -> SwinBlockAttrs:
        if not 0.0 <= self.sd <= 1.0:
            raise ValueError(f"`sd` (={self.sd}) must be between 0 and 1")
        check_positive_float(self, "mlp_ratio", "eps")
        return self


def _block_infer(inputs: tuple[Shape, ...], a: SwinBlockAttrs) -> Shape:
    """As window attention; the MLP's hidden width, int(C x mlp_ratio), must be a width."""
    out = window_attention_shape("swin_block_v2", inputs[0], a)
    hidden = int(out[-1] * a.mlp_ratio)
    if not 1 <= hidden <= MAX_CHANNELS:
        raise ShapeError(f"`mlp_ratio` (={a.mlp_ratio}) makes an MLP of {hidden:,} features "
                         f"from {out[-1]}", hint=f"the hidden width must be 1 to {MAX_CHANNELS:,}")
    return out


def _block_parts(ctx: Ctx) -> list[tuple[str, str, Ctx]]:
    """The block's layers as (op, path, context), in torchvision's order of computation:
    attention, norm1, residual add; MLP (linear, GELU, dropout, linear, dropout), norm2,
    residual add (stochastic depth is the identity in eval and counts nothing)."""
    a: SwinBlockAttrs = ctx.attrs
    x, hidden = ctx.x, (*ctx.x[:2], int(ctx.x[2] * a.mlp_ratio))
    norm = REGISTRY["layernorm"].attrs(eps=a.eps)
    attention = WindowAttentionAttrs(heads=a.heads, window=a.window, shift=a.shift)
    return [("shifted_window_attention_v2", "attn", Ctx((x,), x, attention)),
            ("layernorm", "norm1", Ctx((x,), x, norm)), ("add", "add", Ctx((x, x), x, None)),
            ("linear", "mlp.0", Ctx((x,), hidden, REGISTRY["linear"].attrs(out=hidden[2]))),
            ("gelu", "mlp.1", Ctx((hidden,), hidden, REGISTRY["gelu"].attrs())),
            ("linear", "mlp.3", Ctx((hidden,), x, REGISTRY["linear"].attrs(out=x[2]))),
            ("layernorm", "norm2", Ctx((x,), x, norm)), ("add", "add_1", Ctx((x, x), x, None))]


def _block_cost(ctx: Ctx) -> Cost:
    """The sum of its layers' costs (each counted by its own category, ``parts``); the
    attention's position-bias MLP once per forward."""
    parts = []
    for op, _, part in _block_parts(ctx):
        cost = REGISTRY[op].cost(part)
        parts.append(replace(cost, category=cost.category or REGISTRY[op].category, once=None))
    once = REGISTRY["shifted_window_attention_v2"].cost(_block_parts(ctx)[0][2]).once
    return Cost(params=sum(p.params for p in parts), buffers=sum(p.buffers for p in parts),
                macs=sum(p.macs for p in parts), bias=sum(p.bias for p in parts),
                flops=sum(p.flops for p in parts), in_numel=numel(ctx.x),
                out_numel=numel(ctx.out), scratch=sum(p.scratch for p in parts),
                parts=tuple(parts), once=once)


def _block_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """Each layer through its own op's ONNX rule, its parameters at its path in the block."""
    block = b.prefix
    names = {"in": inputs[0], "norm1": f"{block}::attn_out", "mlp.1": f"{block}::mlp_in",
             "mlp.3": f"{block}::hidden", "norm2": f"{block}::mlp_out"}
    reads = {"attn": ["in"], "norm1": ["attn"], "add": ["in", "norm1"], "mlp.0": ["add"],
             "mlp.1": ["mlp.0"], "mlp.3": ["mlp.1"], "norm2": ["mlp.3"], "add_1": ["add", "norm2"]}
    for op, path, part in _block_parts(ctx):
        b.prefix = f"{block}.{path}"
        names[path] = output if path == "add_1" else f"{block}::{path}"
        REGISTRY[op].onnx(part, b, [names[r] for r in reads[path]], names[path])
    b.prefix = block


def _block_torch(ctx: Ctx) -> Module:
    a: SwinBlockAttrs = ctx.attrs
    window, shift = window_and_shift(a)
    return module("archspec.backends.modules.SwinTransformerBlockV2", ctx.x[2], a.heads,
                  list(window), list(shift),
                  **changed({"stochastic_depth_prob": 0.0, "mlp_ratio": 4.0, "eps": 1e-5},
                            stochastic_depth_prob=a.sd, mlp_ratio=a.mlp_ratio, eps=a.eps))


register(OpDef(
    name="swin_block_v2", attrs=SwinBlockAttrs, cost=_block_cost,
    infer=_block_infer,
    step=lambda ctx: window_step(window_and_shift(ctx.attrs)[0][0], 1), torch=_block_torch,
    onnx=_block_onnx, category=Category.COSINE_WINDOW_ATTENTION,
    positional=("heads", "window", "shift", "sd"), min_opset=17,
    doc="Swin v2's block with res-post-norm (torchvision's SwinTransformerBlockV2) of a "
        "channels-last (H, W, C) map: x + sd(norm1(attn(x))), then x + sd(norm2(mlp(x))); "
        "`attn` is `shifted_window_attention_v2(heads, window, shift)`, `mlp` linear to "
        "`mlp_ratio` x C, GELU, dropout, linear back, dropout, initialised as it is built "
        "(xavier-uniform, normal(std 1e-6) biases); `sd` row-wise stochastic depth; LayerNorm "
        "`eps`. One op because its norms come before the layers they follow in torchvision's "
        "state_dict. Counted as its layers."))

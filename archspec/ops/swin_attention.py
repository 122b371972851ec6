"""Swin's shifted-window attention, v1 and v2 (cosine attention with the continuous position
bias MLP), over channels-last maps ``(H, W, C)`` per sample, as torchvision keeps them.

MACs count the q/k/v and output projections and both attention products (``QK^T`` and
``AV``), as FlopCounterMode does; ``scratch`` counts the attention matrices
(windows x heads x tokens^2).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import model_validator

from archspec.ops.base import (
    Attrs,
    Category,
    Cost,
    Ctx,
    IntOrTuple,
    Module,
    OpDef,
    Shape,
    ShapeError,
    Step,
    changed,
    check_range,
    module,
    numel,
    tuple_of,
    window_step,
)
from archspec.ops.onnx_nodes import l2_normalize, linear, reshape, roll, transpose
from archspec.ops.registry import register
from archspec.ops.window import MAX_WINDOW, channels_last

CPB_HIDDEN = 512  # width of Swin v2's continuous position bias MLP (torchvision's cpb_mlp)
LOGIT_CAP = math.log(100.0)  # Swin v2 clamps the learned logit scale at log(100)
MASK = -100.0  # the logit torchvision adds where a shifted window joins rolled regions


# ------------------------------------------------------------------ shifted window attention


class WindowAttrs(Attrs):
    """What every window attention takes: heads, window size and shift (each an int or a
    (height, width) pair)."""

    heads: int
    window: IntOrTuple
    shift: IntOrTuple = 0

    @model_validator(mode="after")
    def _window_domains(self) -> WindowAttrs:
        check_range(self, ("heads",), 1)
        check_range(self, ("window",), 1, MAX_WINDOW)
        check_range(self, ("shift",), 0)
        return self


class WindowAttentionAttrs(WindowAttrs):
    attention_dropout: float = 0.0
    dropout: float = 0.0
    qkv_bias: bool = True
    proj_bias: bool = True

    @model_validator(mode="after")
    def _domains(self) -> WindowAttentionAttrs:
        for name in ("attention_dropout", "dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"`{name}` (={getattr(self, name)}) must be between 0 and 1")
        return self


def window_and_shift(a: WindowAttrs) -> tuple[tuple[int, int], tuple[int, int]]:
    """Window and shift sizes (height, width); a shift must be smaller than its window."""
    w = tuple_of(a.window, 2, "window")
    s = tuple_of(a.shift, 2, "shift")
    if any(si >= wi for si, wi in zip(s, w)):
        raise ShapeError(f"`shift` (={a.shift}) must be smaller than `window` (={a.window})",
                         hint="Swin shifts by half a window: shift = window // 2")
    return (w[0], w[1]), (s[0], s[1])


def _padded(x: Shape, window: tuple[int, int]) -> tuple[int, int]:
    """The map's sides zero-padded up to whole windows."""
    return tuple(-(-n // w) * w for n, w in zip(x[:2], window))  # type: ignore[return-value]


def _shifts(x: Shape, a: WindowAttentionAttrs) -> tuple[int, int]:
    """The shifts applied: none along a dim whose padded side one window covers."""
    window, shift = window_and_shift(a)
    return tuple(0 if w >= p else s for w, p, s in
                 zip(window, _padded(x, window), shift))  # type: ignore[return-value]


def window_attention_shape(op: str, x: Shape, a: WindowAttrs) -> Shape:
    """A channels-last map whose channels the heads divide; the output has its shape."""
    channels_last(op, x)
    if x[2] % a.heads:
        looks_first = x[0] % a.heads == 0 and x[0] > x[2]
        raise ShapeError(f"`heads` (={a.heads}) must divide the {x[2]} input channels (the last "
                         "dim of a channels-last map)",
                         hint="a (C, H, W) map goes channels-last with `permute([1, 2, 0])`"
                         if looks_first else "choose a divisor of the channel count")
    window_and_shift(a)
    return x


def make_window_attention(cosine: bool) -> OpDef:
    name = "shifted_window_attention_v2" if cosine else "shifted_window_attention"

    def infer(inputs: tuple[Shape, ...], a: WindowAttentionAttrs) -> Shape:
        return window_attention_shape(name, inputs[0], a)

    def cost(ctx: Ctx) -> Cost:
        """Per sample, T padded tokens of C channels in windows of N tokens: MACs 4TC^2 (q, k,
        v, output projections) + 2TNC (QK^T, AV); FLOPs 2 x MACs + bias adds + 5 per attention
        logit (scale, position bias, softmax's 3). v2 runs its position-bias MLP over the
        (2wh-1)(2ww-1) relative offsets once per forward (``once``)."""
        a: WindowAttentionAttrs = ctx.attrs
        (wh, ww), _ = window_and_shift(a)
        c, n, offsets = ctx.x[2], wh * ww, (2 * wh - 1) * (2 * ww - 1)
        tokens = math.prod(_padded(ctx.x, (wh, ww)))
        logits = tokens * a.heads * n
        macs = 4 * tokens * c * c + 2 * tokens * n * c
        params = 4 * c * c + (3 * c if a.qkv_bias else 0) + (c if a.proj_bias else 0)
        bias = tokens * ((3 * c if a.qkv_bias else 0) + (c if a.proj_bias else 0))
        once = _position_mlp(offsets, a.heads) if cosine else None
        return Cost(params=params + (once.params + a.heads if once else offsets * a.heads),
                    buffers=n * n + (2 * offsets if cosine else 0), macs=macs, bias=bias,
                    flops=2 * macs + bias + 5 * logits, in_numel=numel(ctx.x),
                    out_numel=numel(ctx.out), positions=logits, products=2 * tokens * n * c,
                    scratch=logits, once=once)

    def step(ctx: Ctx) -> Step:
        (wh, _), _ = window_and_shift(ctx.attrs)
        return window_step(wh, 1)

    def to_torch(ctx: Ctx) -> Module:
        a: WindowAttentionAttrs = ctx.attrs
        window, shift = window_and_shift(a)
        name = "ShiftedWindowAttentionV2" if cosine else "ShiftedWindowAttention"
        return module(f"archspec.backends.modules.{name}", ctx.x[2],
                      list(window), list(shift), a.heads,
                      **changed({"qkv_bias": True, "proj_bias": True, "attention_dropout": 0.0,
                                 "dropout": 0.0},
                                qkv_bias=a.qkv_bias, proj_bias=a.proj_bias,
                                attention_dropout=a.attention_dropout, dropout=a.dropout))

    def to_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        _window_attention_onnx(ctx, b, inputs[0], output, cosine)

    kind = ("cosine attention scaled by a learned `logit_scale` per head (clamped at log 100), "
            "position bias 16 sigmoid(cpb_mlp(log-spaced offsets)) from a 2-512-heads MLP"
            if cosine else "scaled dot-product attention plus a learned relative position "
            "bias table ((2wh-1)(2ww-1) x heads) read through the index buffer")
    return OpDef(
        name=name, attrs=WindowAttentionAttrs, infer=infer, cost=cost, step=step,
        torch=to_torch, onnx=to_onnx,
        category=Category.COSINE_WINDOW_ATTENTION if cosine else Category.WINDOW_ATTENTION,
        positional=("heads", "window", "shift"), min_opset=13,
        doc=f"Swin {'v2' if cosine else 'v1'} (shifted) window multi-head self-attention of a "
            "channels-last (H, W, C) map (torchvision's ShiftedWindowAttention"
            f"{'V2' if cosine else ''}): zero-pad to whole `window`s, roll by -`shift` (none "
            "along a side one window covers), attend within each window with "
            f"{kind}, shifted windows masked where rolled regions meet; roll back, crop. "
            "`heads`, `window`, `shift` (int or (h, w)), `attention_dropout`, `dropout`, "
            "`qkv_bias`, `proj_bias`. MACs 4TC^2 + 2TNC per sample for T padded tokens, N per "
            f"window{'; the MLP (2 + heads) x 512 per offset, once per forward' if cosine else ''}"
            "; attention matrices T x heads x N elements.")


def _position_mlp(offsets: int, heads: int) -> Cost:
    """Swin v2's cpb_mlp, Linear(2, 512) -> ReLU -> Linear(512, heads, no bias), over the
    relative offsets, then 16 sigmoid of its output: once per forward. ``out_numel``: the
    hidden activations (what the ReLU sees)."""
    hidden = offsets * CPB_HIDDEN
    macs = hidden * (2 + heads)
    return Cost(params=CPB_HIDDEN * (3 + heads), macs=macs, bias=hidden,
                flops=2 * macs + 2 * hidden + 3 * offsets * heads, in_numel=2 * offsets,
                out_numel=hidden, category=Category.POSITION_MLP)


def _shift_mask(padded: tuple[int, int], window: tuple[int, int],
                shift: tuple[int, int]) -> list[list[list[float]]]:
    """torchvision's attention mask of shifted windows, (windows, N, N): 0 where two tokens
    come from the same rolled region, -100 elsewhere. A token's region is which of the three
    bands (before the last window, the last window's unshifted part, the shift) it lies in,
    along each axis; a single band along an axis not shifted."""
    (ph, pw), (wh, ww), (sh, sw) = padded, window, shift

    def band(i: int, size: int, win: int, sft: int) -> int:
        return 0 if sft == 0 or i < size - win else (1 if i < size - sft else 2)

    windows = []
    for top in range(0, ph, wh):
        for left in range(0, pw, ww):
            regions = [3 * band(top + r, ph, wh, sh) + band(left + col, pw, ww, sw)
                       for r in range(wh) for col in range(ww)]
            windows.append([[0.0 if a == b else MASK for b in regions] for a in regions])
    return windows



def _position_bias(b: Any, a: WindowAttentionAttrs, cosine: bool, n: int) -> str:
    """The (1, heads, N, N) bias: the table (v1) or cpb_mlp of the offsets (v2) gathered
    through ``relative_position_index``; v2 takes 16 sigmoid of it."""
    if cosine:
        hidden = linear(b, b.param("relative_coords_table"), "cpb_mlp.0",
                         b.param("cpb_mlp.0.bias"))
        b.node("Relu", [hidden], [b.tmp("cpb_relu")])
        table = reshape(b, linear(b, b.tmp("cpb_relu"), "cpb_mlp.2", None), "cpb_table",
                         [-1, a.heads])
    else:
        table = b.param("relative_position_bias_table")
    b.node("Gather", [table, b.param("relative_position_index")], [b.tmp("bias_rows")], axis=0)
    bias = reshape(b, b.tmp("bias_rows"), "bias_nnh", [n, n, a.heads])
    bias = reshape(b, transpose(b, bias, "bias_hnn", [2, 0, 1]), "bias", [1, a.heads, n, n])
    if not cosine:
        return bias
    b.node("Sigmoid", [bias], [b.tmp("bias_sigmoid")])
    b.node("Mul", [b.tmp("bias_sigmoid"), b.const("sixteen", 16.0)], [b.tmp("bias16")])
    return b.tmp("bias16")


def _window_attention_onnx(ctx: Ctx, b: Any, x: str, output: str, cosine: bool) -> None:
    """The module's forward, node for node (see ShiftedWindowAttention in backends/modules)."""
    a: WindowAttentionAttrs = ctx.attrs
    (h, w, c), (window, _) = ctx.x, window_and_shift(a)
    (wh, ww), (ph, pw), shift = window, _padded(ctx.x, window), _shifts(ctx.x, a)
    n, heads, windows = wh * ww, a.heads, (ph // wh) * (pw // ww)
    if (ph, pw) != (h, w):
        b.node("Pad", [x, b.const("pads", [0, 0, 0, 0, 0, ph - h, pw - w, 0], "int64")],
               [b.tmp("padded")])
        x = b.tmp("padded")
    x = roll(b, x, "rolled", (-shift[0], -shift[1]), (ph, pw))
    x = reshape(b, x, "grid", [-1, ph // wh, wh, pw // ww, ww, c])
    x = reshape(b, transpose(b, x, "grid_t", [0, 1, 3, 2, 4, 5]), "windows", [-1, n, c])
    qkv_bias = b.param("qkv.bias") if a.qkv_bias else None
    if cosine and qkv_bias is not None:
        b.node("Mul", [qkv_bias, b.const("k_bias_off", [1.0] * c + [0.0] * c + [1.0] * c)],
               [b.tmp("qkv_bias")])
        qkv_bias = b.tmp("qkv_bias")
    qkv = reshape(b, linear(b, x, "qkv", qkv_bias), "qkv_heads", [-1, n, 3, heads, c // heads])
    qkv = transpose(b, qkv, "qkv_t", [2, 0, 3, 1, 4])
    q, k, v = (b.tmp(p) for p in "qkv")
    for i, name in enumerate((q, k, v)):
        b.node("Gather", [qkv, b.const(f"pick_{i}", i, "int64")], [name], axis=0)
    if cosine:
        q, k = l2_normalize(b, q, "q_unit"), l2_normalize(b, k, "k_unit")
    else:
        b.node("Mul", [q, b.const("scale", (c // heads) ** -0.5)], [b.tmp("q_scaled")])
        q = b.tmp("q_scaled")
    b.node("MatMul", [q, transpose(b, k, "k_t", [0, 1, 3, 2])], [b.tmp("logits")])
    logits = b.tmp("logits")
    if cosine:
        b.node("Min", [b.param("logit_scale"), b.const("cap", LOGIT_CAP)], [b.tmp("ls_cap")])
        b.node("Exp", [b.tmp("ls_cap")], [b.tmp("ls_exp")])
        b.node("Mul", [logits, b.tmp("ls_exp")], [b.tmp("logits_scaled")])
        logits = b.tmp("logits_scaled")
    b.node("Add", [logits, _position_bias(b, a, cosine, n)], [b.tmp("biased")])
    logits = b.tmp("biased")
    if sum(shift):
        mask = [[[one] for one in _shift_mask((ph, pw), window, shift)]]  # (1, W, 1, N, N)
        grouped = reshape(b, logits, "per_image", [-1, windows, heads, n, n])
        b.node("Add", [grouped, b.const("mask", mask)], [b.tmp("masked")])
        logits = reshape(b, b.tmp("masked"), "masked_flat", [-1, heads, n, n])
    b.node("Softmax", [logits], [b.tmp("attn")], axis=-1)
    b.node("MatMul", [b.tmp("attn"), v], [b.tmp("mixed")])
    x = reshape(b, transpose(b, b.tmp("mixed"), "mixed_t", [0, 2, 1, 3]), "tokens", [-1, n, c])
    x = linear(b, x, "proj", b.param("proj.bias") if a.proj_bias else None)
    x = reshape(b, x, "back", [-1, ph // wh, pw // ww, wh, ww, c])
    x = reshape(b, transpose(b, x, "back_t", [0, 1, 3, 2, 4, 5]), "map", [-1, ph, pw, c])
    x = roll(b, x, "unrolled", shift, (ph, pw))
    if (ph, pw) == (h, w):
        b.node("Identity", [x], [output])
        return
    b.node("Slice", [x, b.const("crop_start", [0, 0], "int64"),
                     b.const("crop_end", [h, w], "int64"), b.const("crop_axes", [1, 2], "int64")],
           [output])


for _cosine in (False, True):
    register(make_window_attention(_cosine))

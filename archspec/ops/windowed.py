"""Windowed attention and the token reshuffles around it, at the level the papers draw them:
Swin's shifted-window attention (v1, and v2's cosine attention with the continuous position
bias MLP) and patch merging; MaxViT's window partition and departition and its relative
attention within each window (block attention) or grid cell (grid attention).

Swin's inputs are channels-last maps ``(H, W, C)`` per sample, as torchvision keeps them;
MaxViT's attention reads ``(groups, tokens, C)``. MACs
count the q/k/v and output projections and both attention products (``QK^T`` and ``AV``), as
FlopCounterMode does; ``scratch`` counts the attention matrices (windows x heads x tokens^2).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from pydantic import model_validator

from archspec.ops.base import (
    GLOBAL,
    MAX_CHANNELS,
    REGISTRY,
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
    check_positive_float,
    check_range,
    fmt_shape,
    module,
    numel,
    register,
    tuple_of,
    window_step,
)

CPB_HIDDEN = 512  # width of Swin v2's continuous position bias MLP (torchvision's cpb_mlp)
LOGIT_CAP = math.log(100.0)  # Swin v2 clamps the learned logit scale at log(100)
MASK = -100.0  # the logit torchvision adds where a shifted window joins rolled regions
MAX_WINDOW = 1024
"""Largest window side: far beyond any real network (Swin uses 7 to 24), so that a slip such as
``window=10**6`` is a located error, not a (2w - 1)^2-row bias table that `compile` cannot
allocate."""


def channels_last(op: str, x: Shape) -> Shape:
    """Check that ``x`` is a channels-last map ``(H, W, C)``."""
    if len(x) != 3:
        raise ShapeError(f"`{op}` needs a channels-last (H, W, C) map per sample, got "
                         f"{fmt_shape(x)}", code="E303",
                         hint="turn a (C, H, W) map channels-last with `permute(1, 2, 0)`")
    return x


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


def _window(a: WindowAttrs) -> tuple[tuple[int, int], tuple[int, int]]:
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
    window, shift = _window(a)
    return tuple(0 if w >= p else s for w, p, s in
                 zip(window, _padded(x, window), shift))  # type: ignore[return-value]


def _window_attention_infer(op: str, x: Shape, a: WindowAttrs) -> Shape:
    """A channels-last map whose channels the heads divide; the output has its shape."""
    channels_last(op, x)
    if x[2] % a.heads:
        looks_first = x[0] % a.heads == 0 and x[0] > x[2]
        raise ShapeError(f"`heads` (={a.heads}) must divide the {x[2]} input channels (the last "
                         "dim of a channels-last map)",
                         hint="a (C, H, W) map goes channels-last with `permute([1, 2, 0])`"
                         if looks_first else "choose a divisor of the channel count")
    _window(a)
    return x


def make_window_attention(cosine: bool) -> OpDef:
    name = "shifted_window_attention_v2" if cosine else "shifted_window_attention"

    def infer(inputs: tuple[Shape, ...], a: WindowAttentionAttrs) -> Shape:
        return _window_attention_infer(name, inputs[0], a)

    def cost(ctx: Ctx) -> Cost:
        """Per sample, T padded tokens of C channels in windows of N tokens: MACs 4TC^2 (q, k,
        v, output projections) + 2TNC (QK^T, AV); FLOPs 2 x MACs + bias adds + 5 per attention
        logit (scale, position bias, softmax's 3). v2 runs its position-bias MLP over the
        (2wh-1)(2ww-1) relative offsets once per forward (``once``)."""
        a: WindowAttentionAttrs = ctx.attrs
        (wh, ww), _ = _window(a)
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
        (wh, _), _ = _window(ctx.attrs)
        return window_step(wh, 1)

    def to_torch(ctx: Ctx) -> Module:
        a: WindowAttentionAttrs = ctx.attrs
        window, shift = _window(a)
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


def _roll(b: Any, x: str, key: str, shifts: tuple[int, int], sizes: tuple[int, int]) -> str:
    """``torch.roll(x, shifts, dims=(1, 2))`` as a Slice and Concat per shifted axis."""
    for axis, shift, size in zip((1, 2), shifts, sizes):
        cut = (-shift) % size
        if shift % size == 0:
            continue
        parts = []
        for part, (start, end) in (("tail", (cut, size)), ("head", (0, cut))):
            name = b.tmp(f"{key}_{axis}_{part}")
            b.node("Slice", [x, b.const(f"{key}_{axis}_{part}_start", [start], "int64"),
                             b.const(f"{key}_{axis}_{part}_end", [end], "int64"),
                             b.const(f"{key}_{axis}_axis", [axis], "int64")], [name])
            parts.append(name)
        x = b.tmp(f"{key}_{axis}")
        b.node("Concat", parts, [x], axis=axis)
    return x


def _linear(b: Any, x: str, key: str, bias: str | None) -> str:
    """``x @ weight.T (+ bias)`` over the last dim, the weight the state_dict entry
    ``{key}.weight`` of the current layer."""
    b.node("Transpose", [b.param(f"{key}.weight")], [b.tmp(f"{key}_wt")], perm=[1, 0])
    out = b.tmp(f"{key}_out")
    b.node("MatMul", [x, b.tmp(f"{key}_wt")], [out if bias is None else b.tmp(f"{key}_mm")])
    if bias is not None:
        b.node("Add", [b.tmp(f"{key}_mm"), bias], [out])
    return out


def _reshape(b: Any, x: str, key: str, shape: list[int]) -> str:
    b.node("Reshape", [x, b.const(f"{key}_shape", shape, "int64")], [b.tmp(key)])
    return b.tmp(key)


def _transpose(b: Any, x: str, key: str, perm: list[int]) -> str:
    b.node("Transpose", [x], [b.tmp(key)], perm=perm)
    return b.tmp(key)


def _l2_normalize(b: Any, x: str, key: str) -> str:
    """``F.normalize(x, dim=-1)``: x / max(||x||, 1e-12); ReduceL2's axes an attribute up to
    opset 17, an input from 18."""
    norm = b.tmp(f"{key}_norm")
    if b.opset >= 18:
        b.node("ReduceL2", [x, b.const(f"{key}_axes", [-1], "int64")], [norm], keepdims=1)
    else:
        b.node("ReduceL2", [x], [norm], axes=[-1], keepdims=1)
    b.node("Max", [norm, b.const(f"{key}_eps", 1e-12)], [b.tmp(f"{key}_clamped")])
    b.node("Div", [x, b.tmp(f"{key}_clamped")], [b.tmp(key)])
    return b.tmp(key)


def _position_bias(b: Any, a: WindowAttentionAttrs, cosine: bool, n: int) -> str:
    """The (1, heads, N, N) bias: the table (v1) or cpb_mlp of the offsets (v2) gathered
    through ``relative_position_index``; v2 takes 16 sigmoid of it."""
    if cosine:
        hidden = _linear(b, b.param("relative_coords_table"), "cpb_mlp.0",
                         b.param("cpb_mlp.0.bias"))
        b.node("Relu", [hidden], [b.tmp("cpb_relu")])
        table = _reshape(b, _linear(b, b.tmp("cpb_relu"), "cpb_mlp.2", None), "cpb_table",
                         [-1, a.heads])
    else:
        table = b.param("relative_position_bias_table")
    b.node("Gather", [table, b.param("relative_position_index")], [b.tmp("bias_rows")], axis=0)
    bias = _reshape(b, b.tmp("bias_rows"), "bias_nnh", [n, n, a.heads])
    bias = _reshape(b, _transpose(b, bias, "bias_hnn", [2, 0, 1]), "bias", [1, a.heads, n, n])
    if not cosine:
        return bias
    b.node("Sigmoid", [bias], [b.tmp("bias_sigmoid")])
    b.node("Mul", [b.tmp("bias_sigmoid"), b.const("sixteen", 16.0)], [b.tmp("bias16")])
    return b.tmp("bias16")


def _window_attention_onnx(ctx: Ctx, b: Any, x: str, output: str, cosine: bool) -> None:
    """The module's forward, node for node (see ShiftedWindowAttention in backends/modules)."""
    a: WindowAttentionAttrs = ctx.attrs
    (h, w, c), (window, _) = ctx.x, _window(a)
    (wh, ww), (ph, pw), shift = window, _padded(ctx.x, window), _shifts(ctx.x, a)
    n, heads, windows = wh * ww, a.heads, (ph // wh) * (pw // ww)
    if (ph, pw) != (h, w):
        b.node("Pad", [x, b.const("pads", [0, 0, 0, 0, 0, ph - h, pw - w, 0], "int64")],
               [b.tmp("padded")])
        x = b.tmp("padded")
    x = _roll(b, x, "rolled", (-shift[0], -shift[1]), (ph, pw))
    x = _reshape(b, x, "grid", [-1, ph // wh, wh, pw // ww, ww, c])
    x = _reshape(b, _transpose(b, x, "grid_t", [0, 1, 3, 2, 4, 5]), "windows", [-1, n, c])
    qkv_bias = b.param("qkv.bias") if a.qkv_bias else None
    if cosine and qkv_bias is not None:
        b.node("Mul", [qkv_bias, b.const("k_bias_off", [1.0] * c + [0.0] * c + [1.0] * c)],
               [b.tmp("qkv_bias")])
        qkv_bias = b.tmp("qkv_bias")
    qkv = _reshape(b, _linear(b, x, "qkv", qkv_bias), "qkv_heads", [-1, n, 3, heads, c // heads])
    qkv = _transpose(b, qkv, "qkv_t", [2, 0, 3, 1, 4])
    q, k, v = (b.tmp(p) for p in "qkv")
    for i, name in enumerate((q, k, v)):
        b.node("Gather", [qkv, b.const(f"pick_{i}", i, "int64")], [name], axis=0)
    if cosine:
        q, k = _l2_normalize(b, q, "q_unit"), _l2_normalize(b, k, "k_unit")
    else:
        b.node("Mul", [q, b.const("scale", (c // heads) ** -0.5)], [b.tmp("q_scaled")])
        q = b.tmp("q_scaled")
    b.node("MatMul", [q, _transpose(b, k, "k_t", [0, 1, 3, 2])], [b.tmp("logits")])
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
        grouped = _reshape(b, logits, "per_image", [-1, windows, heads, n, n])
        b.node("Add", [grouped, b.const("mask", mask)], [b.tmp("masked")])
        logits = _reshape(b, b.tmp("masked"), "masked_flat", [-1, heads, n, n])
    b.node("Softmax", [logits], [b.tmp("attn")], axis=-1)
    b.node("MatMul", [b.tmp("attn"), v], [b.tmp("mixed")])
    x = _reshape(b, _transpose(b, b.tmp("mixed"), "mixed_t", [0, 2, 1, 3]), "tokens", [-1, n, c])
    x = _linear(b, x, "proj", b.param("proj.bias") if a.proj_bias else None)
    x = _reshape(b, x, "back", [-1, ph // wh, pw // ww, wh, ww, c])
    x = _reshape(b, _transpose(b, x, "back_t", [0, 1, 3, 2, 4, 5]), "map", [-1, ph, pw, c])
    x = _roll(b, x, "unrolled", shift, (ph, pw))
    if (ph, pw) == (h, w):
        b.node("Identity", [x], [output])
        return
    b.node("Slice", [x, b.const("crop_start", [0, 0], "int64"),
                     b.const("crop_end", [h, w], "int64"), b.const("crop_axes", [1, 2], "int64")],
           [output])


for _cosine in (False, True):
    register(make_window_attention(_cosine))


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
        h, w, c = channels_last(name, inputs[0])
        return (-(-h // 2), -(-w // 2), 2 * c)

    def cost(ctx: Ctx) -> Cost:
        """Per output position, 4C -> 2C weights (MACs 8C^2); the LayerNorm 7 FLOPs per
        element it normalises (``positions``: 4C per output position before the reduction in
        v1, 2C after it in v2)."""
        c, positions = ctx.x[2], numel(ctx.out[:2])
        norm = 2 * c if v2 else 4 * c
        macs = positions * 8 * c * c
        return Cost(params=8 * c * c + 2 * norm, macs=macs,
                    flops=2 * macs + 7 * positions * norm, in_numel=numel(ctx.x),
                    out_numel=numel(ctx.out), positions=positions * norm)

    def to_torch(ctx: Ctx) -> Module:
        a: PatchMergingAttrs = ctx.attrs
        return module("archspec.backends.modules.PatchMerging", ctx.x[2],
                      **changed({"eps": 1e-5, "v2": False}, eps=a.eps, v2=v2))

    def to_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        (h, w, _), x = ctx.x, inputs[0]
        if h % 2 or w % 2:
            b.node("Pad", [x, b.const("pads", [0, 0, 0, 0, 0, h % 2, w % 2, 0], "int64")],
                   [b.tmp("padded")])
            x = b.tmp("padded")
        parts = []
        for i, (dh, dw) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
            b.node("Slice", [x, b.const(f"start{i}", [dh, dw], "int64"),
                             b.const("end", [h + 1, w + 1], "int64"),
                             b.const("axes", [1, 2], "int64"), b.const("steps", [2, 2], "int64")],
                   [b.tmp(f"part{i}")])
            parts.append(b.tmp(f"part{i}"))
        b.node("Concat", parts, [b.tmp("merged")], axis=-1)
        if v2:
            x = _linear(b, b.tmp("merged"), "reduction", None)
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
            "ceil(W/2), 2C): zero-pad to even sides, concatenate each 2x2 patch's pixels "
            f"((0,0), (1,0), (0,1), (1,1)), {order.strip()} (LayerNorm `eps`). Params "
            f"8C^2 + {'4' if v2 else '8'}C; MACs 8C^2 per output position.")


for _v2 in (False, True):
    register(make_patch_merging(_v2))


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
    x = _reshape(b, inputs[0], "split", [-1, c, h // p, p, w // p, p])
    x = _transpose(b, x, "moved", [0, 2, 4, 3, 5, 1])
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
    x = _reshape(b, inputs[0], "split", [-1, a.h, a.w, a.p, a.p, ctx.x[2]])
    x = _transpose(b, x, "moved", [0, 5, 1, 3, 2, 4])
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
    qkv = _linear(b, inputs[0], "to_qkv", b.param("to_qkv.bias"))
    parts = []
    for i, name in enumerate("qkv"):
        b.node("Slice", [qkv, b.const(f"{name}_start", [i * c], "int64"),
                         b.const(f"{name}_end", [(i + 1) * c], "int64"),
                         b.const("last", [-1], "int64")], [b.tmp(name)])
        split = _reshape(b, b.tmp(name), f"{name}_heads", [-1, g, n, heads, dh])
        parts.append(_transpose(b, split, f"{name}_t", [0, 1, 3, 2, 4]))
    q, k, v = parts
    b.node("Mul", [k, b.const("scale", c ** -0.5)], [b.tmp("k_scaled")])
    k_t = _transpose(b, b.tmp("k_scaled"), "k_scaled_t", [0, 1, 2, 4, 3])
    b.node("MatMul", [q, k_t], [b.tmp("logits")])
    b.node("Gather", [b.param("relative_position_bias_table"),
                      b.param("relative_position_index")], [b.tmp("bias_nnh")], axis=0)
    bias = _transpose(b, b.tmp("bias_nnh"), "bias", [2, 0, 1])
    b.node("Add", [b.tmp("logits"), bias], [b.tmp("biased")])
    b.node("Softmax", [b.tmp("biased")], [b.tmp("attn")], axis=-1)
    b.node("MatMul", [b.tmp("attn"), v], [b.tmp("mixed")])
    x = _reshape(b, _transpose(b, b.tmp("mixed"), "mixed_t", [0, 1, 3, 2, 4]), "tokens",
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
    out = _window_attention_infer("swin_block_v2", inputs[0], a)
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
    window, shift = _window(a)
    return module("archspec.backends.modules.SwinTransformerBlockV2", ctx.x[2], a.heads,
                  list(window), list(shift),
                  **changed({"stochastic_depth_prob": 0.0, "mlp_ratio": 4.0, "eps": 1e-5},
                            stochastic_depth_prob=a.sd, mlp_ratio=a.mlp_ratio, eps=a.eps))


register(OpDef(
    name="swin_block_v2", attrs=SwinBlockAttrs, cost=_block_cost,
    infer=_block_infer,
    step=lambda ctx: window_step(_window(ctx.attrs)[0][0], 1), torch=_block_torch,
    onnx=_block_onnx, category=Category.COSINE_WINDOW_ATTENTION,
    positional=("heads", "window", "shift", "sd"), min_opset=17,
    doc="Swin v2's block with res-post-norm (torchvision's SwinTransformerBlockV2) of a "
        "channels-last (H, W, C) map: x + sd(norm1(attn(x))), then x + sd(norm2(mlp(x))); "
        "`attn` is `shifted_window_attention_v2(heads, window, shift)`, `mlp` linear to "
        "`mlp_ratio` x C, GELU, dropout, linear back, dropout, initialised as it is built "
        "(xavier-uniform, normal(std 1e-6) biases); `sd` row-wise stochastic depth; LayerNorm "
        "`eps`. One op because its norms come before the layers they follow in torchvision's "
        "state_dict. Counted as its layers."))

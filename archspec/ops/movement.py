"""Data movement over per-sample dims (0 = channels or the first dim after the batch): pad,
roll, pixel_shuffle and pixel_unshuffle on (..., C, H, W), stack of equal shapes, expand of
size-1 dims and tile.

No op here computes anything: FLOPs and MACs are 0, ``in_numel``/``out_numel`` count the
elements read and written, and every tool counts them as nothing (:attr:`Category.MOVE`).
Torch calls take the batched dim ``dim + 1``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Literal

from pydantic import field_validator, model_validator

from archspec.ops.base import (
    GLOBAL,
    POINTWISE,
    Attrs,
    Category,
    Cost,
    Ctx,
    Function,
    OpDef,
    Shape,
    ShapeError,
    Step,
    fmt_shape,
    function,
    module,
    numel,
    window_step,
)
from archspec.ops.registry import register
from archspec.ops.tensor import norm_dim


def _moved(ctx: Ctx) -> Cost:
    return Cost(in_numel=sum(map(numel, ctx.inputs)), out_numel=numel(ctx.out))


def _ints(v: int | tuple[int, ...]) -> tuple[int, ...]:
    return (v,) if isinstance(v, int) else tuple(v)


def _show(v: int | tuple[int, ...]) -> str:
    """An int or a list of ints as a spec writes it: ``2``, ``[1, -2]``."""
    return str(v) if isinstance(v, int) else str(list(v))


def _slice(b: Any, x: str, key: str, axis: int, start: int, end: int) -> str:
    """``x[start:end]`` along the batched ``axis`` (one ONNX Slice); its output's name."""
    b.node("Slice", [x, b.const(f"{key}_start", [start], "int64"),
                     b.const(f"{key}_end", [end], "int64"),
                     b.const(f"{key}_axis", [axis], "int64")], [b.tmp(key)])
    return b.tmp(key)


# ------------------------------------------------------------------------ pad

class PadAttrs(Attrs):
    pads: tuple[int, ...]
    mode: Literal["constant", "reflect", "replicate", "circular"] = "constant"
    value: float = 0.0

    @field_validator("pads")
    @classmethod
    def _pairs(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or len(v) % 2:
            raise ValueError(f"`pads` (={list(v)}) needs pairs (before, after), last dim first "
                             "as F.pad lists them: [left, right, top, bottom, ...]")
        if min(v) < 0:
            raise ValueError(f"`pads` (={list(v)}) must be non-negative (slice or center_crop "
                             "to crop)")
        return v

    @model_validator(mode="after")
    def _value(self) -> PadAttrs:
        if self.value != 0.0 and self.mode != "constant":
            raise ValueError(f"`value` (={self.value}) applies to mode \"constant\" only, not "
                             f"to \"{self.mode}\"")
        return self


def _pad_pairs(x: Shape, a: PadAttrs) -> list[tuple[int, int]]:
    """(before, after) per per-sample dim, checked against the input as torch checks them."""
    k = len(a.pads) // 2
    if k > len(x):
        raise ShapeError(f"`pads` (={list(a.pads)}) pad {k} dims, the input {fmt_shape(x)} has "
                         f"{len(x)}", code="E303", hint="two values per padded dim, last first")
    if a.mode != "constant" and not (k <= 3 and len(x) in (k, k + 1)):
        raise ShapeError(f"mode \"{a.mode}\" pads the last 1, 2 or 3 dims of an input of that "
                         f"many dims or one more, not {k} of a {fmt_shape(x)} input",
                         code="E303", hint="give one pair per spatial dim: [left, right] for "
                                           "(C, L), [left, right, top, bottom] for (C, H, W)")
    pairs = [(0, 0)] * (len(x) - k) + [(a.pads[2 * j], a.pads[2 * j + 1])
                                       for j in reversed(range(k))]
    for d, (size, pair) in enumerate(zip(x, pairs)):
        if a.mode == "reflect" and max(pair) >= size:
            raise ShapeError(f"`pads` (={list(a.pads)}) reflect {max(pair)} positions of dim {d}"
                             f", which has {size}: reflect padding must be below the size",
                             hint="pad less, or use mode=\"replicate\" or \"constant\"")
        if a.mode == "circular" and max(pair) > size:
            raise ShapeError(f"`pads` (={list(a.pads)}) wrap {max(pair)} positions of dim {d}, "
                             f"which has {size}: circular padding wraps around at most once",
                             hint="pad at most the dim's size")
    return pairs


def _pad_torch(ctx: Ctx) -> Function:
    a: PadAttrs = ctx.attrs
    kwargs: dict[str, Any] = {"mode": a.mode} if a.mode != "constant" else {}
    if a.value:
        kwargs["value"] = a.value
    return function("torch.nn.functional.pad", pad=a.pads, **kwargs)


def _pad_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """Pad (constant, reflect; replicate is "edge"); circular as a Slice and Concat per dim."""
    a: PadAttrs = ctx.attrs
    pairs = [(0, 0), *_pad_pairs(ctx.x, a)]
    if a.mode != "circular":
        pads = [p for p, _ in pairs] + [q for _, q in pairs]
        extra = [b.const("value", a.value)] if a.mode == "constant" else []
        b.node("Pad", [inputs[0], b.const("pads", pads, "int64"), *extra], [output],
               mode={"replicate": "edge"}.get(a.mode, a.mode))
        return
    x = inputs[0]
    padded = [axis for axis, pair in enumerate(pairs) if any(pair)]
    for axis in padded:
        (before, after), size = pairs[axis], ctx.x[axis - 1]
        parts = [_slice(b, x, f"wrap{axis}_before", axis, size - before, size)] * bool(before)
        parts += [x] + [_slice(b, x, f"wrap{axis}_after", axis, 0, after)] * bool(after)
        x = output if axis == padded[-1] else b.tmp(f"wrap{axis}")
        b.node("Concat", parts, [x], axis=axis)


def _pad_infer(inputs: tuple[Shape, ...], a: PadAttrs) -> Shape:
    return tuple(n + p + q for n, (p, q) in zip(inputs[0], _pad_pairs(inputs[0], a)))


register(OpDef(name="pad", attrs=PadAttrs, infer=_pad_infer, cost=_moved,
               step=lambda ctx: POINTWISE, category=Category.MOVE, torch=_pad_torch,
               onnx=_pad_onnx, positional=("pads", "mode", "value"),
               doc="Pads the per-sample dims (F.pad): `pads` lists (before, after) pairs, the "
                   "last dim first ([left, right, top, bottom] for (C, H, W)); `mode` "
                   "\"constant\" (with `value`), \"reflect\" (each pad below the dim's size), "
                   "\"replicate\" or \"circular\" (at most the size), the last three over the "
                   "last 1-3 dims. FLOPs 0."))

# ------------------------------------------------------------------------ roll


class RollAttrs(Attrs):
    shifts: int | tuple[int, ...]
    dims: int | tuple[int, ...]

    @model_validator(mode="after")
    def _paired(self) -> RollAttrs:
        if not _ints(self.shifts):
            raise ValueError("`shifts` (=[]) needs at least one shift")
        if len(_ints(self.shifts)) != len(_ints(self.dims)):
            raise ValueError(f"`shifts` (={_show(self.shifts)}) and `dims` (={_show(self.dims)}) "
                             "need one shift per dim")
        return self


def _roll_dims(x: Shape, a: RollAttrs) -> list[tuple[int, int]]:
    """(per-sample dim, shift) pairs, the dims checked to exist."""
    return [(norm_dim("roll", x, d), s) for s, d in zip(_ints(a.shifts), _ints(a.dims))]


def _roll_infer(inputs: tuple[Shape, ...], a: RollAttrs) -> Shape:
    _roll_dims(inputs[0], a)
    return inputs[0]


def _roll_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """``torch.roll``: per shifted dim, the last ``shift`` positions moved to the front."""
    x = inputs[0]
    moves = [(d, s % ctx.x[d]) for d, s in _roll_dims(ctx.x, ctx.attrs) if s % ctx.x[d]]
    if not moves:
        b.node("Identity", [x], [output])
    for i, (d, shift) in enumerate(moves):
        size, key = ctx.x[d], f"roll{i}"
        parts = [_slice(b, x, f"{key}_tail", d + 1, size - shift, size),
                 _slice(b, x, f"{key}_head", d + 1, 0, size - shift)]
        x = output if i == len(moves) - 1 else b.tmp(key)
        b.node("Concat", parts, [x], axis=d + 1)


register(OpDef(name="roll", attrs=RollAttrs, cost=_moved, category=Category.MOVE,
               infer=_roll_infer,
               step=lambda ctx: POINTWISE, onnx=_roll_onnx, positional=("shifts", "dims"),
               torch=lambda ctx: function("torch.roll", shifts=ctx.attrs.shifts, dims=tuple(
                   d + 1 for d, _ in _roll_dims(ctx.x, ctx.attrs))),
               doc="Rolls per-sample `dims` by `shifts` positions (an int or a list each; "
                   "torch.roll), elements shifted past the end coming back at the start. Shape "
                   "unchanged; FLOPs 0."))

# ------------------------------------------------------------------------ pixel shuffles


class FactorAttrs(Attrs):
    factor: int

    @field_validator("factor")
    @classmethod
    def _positive(cls, v: int) -> int:
        if not 1 <= v <= 1024:
            raise ValueError(f"`factor` (={v}) must be positive and at most 1,024")
        return v


def make_shuffle(op: str) -> OpDef:
    """pixel_shuffle, (..., C r^2, H, W) -> (..., C, H r, W r), or its inverse."""
    up = op == "pixel_shuffle"

    def infer(inputs: tuple[Shape, ...], a: FactorAttrs) -> Shape:
        x, r = inputs[0], a.factor
        if len(x) < 3:
            raise ShapeError(f"`{op}` needs a (..., C, H, W) input, got {fmt_shape(x)}",
                             code="E303", hint="it moves pixels between channels and a 2-D map")
        *lead, c, h, w = x
        if up and c % (r * r):
            raise ShapeError(f"`factor` (={r}): {r}^2 = {r * r} must divide the {c} channels",
                             hint="pixel_shuffle turns C r^2 channels into C")
        if not up and (h % r or w % r):
            raise ShapeError(f"`factor` (={r}) must divide the {h}x{w} map",
                             hint="crop or pad the map to a multiple of the factor")
        if up:
            return (*lead, c // (r * r), h * r, w * r)
        return (*lead, c * r * r, h // r, w // r)

    def to_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        """Reshape, Transpose, Reshape: channels (C, r, r) <-> (H, r, W, r) positions."""
        r, n = ctx.attrs.factor, len(ctx.x) - 2  # n: the batched axis of C
        *lead, c, h, w = ctx.x
        split = [0, *lead, c // (r * r), r, r, h, w] if up else \
            [0, *lead, c, h // r, r, w // r, r]
        perm = [*range(n), n, n + 3, n + 1, n + 4, n + 2] if up else \
               [*range(n), n, n + 2, n + 4, n + 1, n + 3]
        b.node("Reshape", [inputs[0], b.const("split_shape", split, "int64")], [b.tmp("split")])
        b.node("Transpose", [b.tmp("split")], [b.tmp("moved")], perm=perm)
        b.node("Reshape", [b.tmp("moved"), b.const("shape", [0, *ctx.out], "int64")], [output])

    def step(ctx: Ctx) -> Step:
        r = ctx.attrs.factor
        if len(ctx.x) > 3:  # the first spatial axis is a leading dim or C, not H
            return GLOBAL
        return Step(stride=Fraction(1, r)) if up else window_step(r, r)

    torch_name = "torch.nn.PixelShuffle" if up else "torch.nn.PixelUnshuffle"
    return OpDef(
        name=op, attrs=FactorAttrs, infer=infer, cost=_moved, step=step, onnx=to_onnx,
        category=Category.MOVE, positional=("factor",), channels_first=True, fresh_output=False,
        torch=lambda ctx: module(torch_name, ctx.attrs.factor),
        doc=("Sub-pixel upsampling (nn.PixelShuffle): (..., C r^2, H, W) -> (..., C, H r, W r) "
             "for `factor` r." if up else
             "The inverse of pixel_shuffle (nn.PixelUnshuffle): (..., C, H, W) -> (..., C r^2, "
             "H / r, W / r) for `factor` r dividing H and W.") + " FLOPs 0.")


for _op in ("pixel_shuffle", "pixel_unshuffle"):
    register(make_shuffle(_op))

# ------------------------------------------------------------------------ stack


class StackAttrs(Attrs):
    dim: int = 0


def _stack_dim(inputs: tuple[Shape, ...], a: StackAttrs) -> int:
    """The new dim's position in the output, checked; the inputs checked to be equal."""
    first = inputs[0]
    if any(s != first for s in inputs[1:]):
        raise ShapeError("`stack` inputs have different shapes", code="E305",
                         hint="stack takes inputs of one shape; concat joins along a dim")
    if not -len(first) - 1 <= a.dim <= len(first):
        raise ShapeError(f"`dim` (={a.dim}) is out of range for stacking {fmt_shape(first)} "
                         f"inputs (from {-len(first) - 1} to {len(first)})",
                         hint="the new dim goes before per-sample dim `dim` (0 = first)")
    return a.dim % (len(first) + 1)


def _stack_infer(inputs: tuple[Shape, ...], a: StackAttrs) -> Shape:
    d, x = _stack_dim(inputs, a), inputs[0]
    return (*x[:d], len(inputs), *x[d:])


def _stack_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    axis = _stack_dim(ctx.inputs, ctx.attrs) + 1
    axes = b.const("axes", [axis], "int64")
    parts = [b.tmp(f"part{i}") for i in range(len(inputs))]
    for x, part in zip(inputs, parts):
        b.node("Unsqueeze", [x, axes], [part])
    b.node("Concat", parts, [output], axis=axis)


register(OpDef(name="stack", attrs=StackAttrs, infer=_stack_infer, cost=_moved,
               inputs=(1, None), positional=("dim",), category=Category.MOVE,
               step=lambda ctx: GLOBAL if _stack_dim(ctx.inputs, ctx.attrs) <= 1
               else POINTWISE, onnx=_stack_onnx,
               torch=lambda ctx: function("torch.stack", as_list=True,
                                          dim=_stack_dim(ctx.inputs, ctx.attrs) + 1),
               doc="Stacks inputs of one shape along a new per-sample dim before `dim` "
                   "(torch.stack): n (C, H, W) inputs, `stack(a, b, dim=0)`, give (n, C, H, W). "
                   "FLOPs 0."))

# ------------------------------------------------------------------------ expand, tile


class SizesAttrs(Attrs):
    sizes: tuple[int, ...]

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < 1 and d != -1 for d in v):
            raise ValueError(f"`sizes` (={list(v)}) must be positive, or -1 to keep a dim")
        return v


def _expand_infer(inputs: tuple[Shape, ...], a: SizesAttrs) -> Shape:
    x = inputs[0]
    if len(a.sizes) != len(x):
        raise ShapeError(f"`sizes` (={list(a.sizes)}) has {len(a.sizes)} dims, the input "
                         f"{fmt_shape(x)} has {len(x)}", code="E303",
                         hint="one size per per-sample dim (-1 keeps it); add size-1 dims "
                              "with reshape first")
    for d, (n, size) in enumerate(zip(x, a.sizes)):
        if size not in (-1, n) and n != 1:
            raise ShapeError(f"`sizes` (={list(a.sizes)}) expands dim {d} of size {n} to "
                             f"{size}: only size-1 dims expand",
                             hint="use tile to repeat a dim larger than 1")
    return tuple(n if size == -1 else size for n, size in zip(x, a.sizes))


register(OpDef(name="expand", attrs=SizesAttrs, infer=_expand_infer, cost=_moved,
               category=Category.MOVE, step=lambda ctx: POINTWISE, fresh_output=False,
               positional=("sizes",),
               torch=lambda ctx: function("torch.broadcast_to", size=(-1, *ctx.out)),
               onnx=lambda ctx, b, inputs, output: b.node(
                   "Expand", [inputs[0], b.const("shape", [1, *ctx.out], "int64")], [output]),
               doc="Broadcasts size-1 per-sample dims to `sizes` (-1 keeps a dim) without "
                   "copying (torch.broadcast_to, a view): a (C, 1, 1) gate expanded to "
                   "(C, H, W). FLOPs 0."))


class TileAttrs(Attrs):
    reps: int | tuple[int, ...]

    @field_validator("reps")
    @classmethod
    def _positive(cls, v: int | tuple[int, ...]) -> int | tuple[int, ...]:
        if not _ints(v) or min(_ints(v)) < 1 or math.prod(_ints(v)) > 2**24:
            raise ValueError(f"`reps` (={_show(v)}) must be positive repeat counts (at most "
                             f"{2**24:,} copies)")
        return v


def _tile_reps(x: Shape, a: TileAttrs) -> tuple[int, ...]:
    """One count per per-sample dim: ones before fewer counts than dims (torch.tile)."""
    reps = _ints(a.reps)
    if len(reps) > len(x):
        raise ShapeError(f"`reps` (={_show(a.reps)}) repeats {len(reps)} dims, the input "
                         f"{fmt_shape(x)} has {len(x)}", code="E303",
                         hint="add size-1 dims with reshape first")
    return (1,) * (len(x) - len(reps)) + reps


def _tile_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """Tile by [1, *reps], its output's shape declared (inference loses the batch's name)."""
    reps = [1, *_tile_reps(ctx.x, ctx.attrs)]
    b.node("Tile", [inputs[0], b.const("repeats", reps, "int64")], [output])
    b.declare(output, ctx.out)


register(OpDef(name="tile", attrs=TileAttrs, cost=_moved, category=Category.MOVE,
               infer=lambda inputs, a: tuple(
                   n * r for n, r in zip(inputs[0], _tile_reps(inputs[0], a))),
               step=lambda ctx: POINTWISE, positional=("reps",),
               torch=lambda ctx: function("torch.tile", dims=(1, *_tile_reps(ctx.x, ctx.attrs))),
               onnx=_tile_onnx,
               doc="Repeats the input `reps` times along each per-sample dim (torch.tile; "
                   "fewer counts than dims repeat the last dims). FLOPs 0."))

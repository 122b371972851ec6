"""Tensor manipulation along per-sample dims (0 = channels/features, then the spatial dims):
channel_shuffle, mean, slice, select, the several-result split and chunk, and the layout ops
permute, transpose and reshape (tokens <-> maps, channels first <-> last).

Torch calls take the batched dim ``dim + 1``; every op but mean and channel_shuffle returns a
view of its input.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import ValidationInfo, field_validator

from archspec.ops.base import (
    GLOBAL,
    POINTWISE,
    Attrs,
    Category,
    Cost,
    Ctx,
    Function,
    Module,
    OpDef,
    Shape,
    ShapeError,
    Step,
    changed,
    fmt_shape,
    function,
    module,
    numel,
)
from archspec.ops.registry import register


class PositiveAttrs(Attrs):
    """Attributes whose listed int fields must be positive."""

    @field_validator("*")
    @classmethod
    def _positive(cls, v: Any, info: ValidationInfo) -> Any:
        if info.field_name in cls.positive_fields and min(
                (v,) if isinstance(v, int) else v, default=0) < 1:
            raise ValueError(f"`{info.field_name}` (={v}) must be positive")
        return v

    positive_fields: ClassVar[tuple[str, ...]] = ()


def norm_dim(op: str, x: Shape, dim: int) -> int:
    """``dim`` of a per-sample shape, negative counting from the end, checked to exist."""
    if not -len(x) <= dim < len(x):
        raise ShapeError(f"`{op}` dim {dim} is out of range for a {fmt_shape(x)} input",
                         hint="dims count from 0 (channels or features), after the batch")
    return dim % len(x)


def _moved(ctx: Ctx) -> Cost:
    n = numel(ctx.out)
    return Cost(in_numel=n, out_numel=n)


def _const_slice(b: Any, inputs: list[str], output: str, axis: int, start: int, end: int,
                 step: int = 1) -> None:
    """One ONNX Slice of ``start:end:step`` along the batched ``axis``."""
    b.node("Slice", [inputs[0], b.const("starts", [start], "int64"),
                     b.const("ends", [end], "int64"), b.const("axes", [axis], "int64"),
                     b.const("steps", [step], "int64")], [output])


# ------------------------------------------------------------------------ channel_shuffle


class ShuffleAttrs(PositiveAttrs):
    positive_fields = ("groups",)
    groups: int


def _shuffle_infer(inputs: tuple[Shape, ...], a: ShuffleAttrs) -> Shape:
    x = inputs[0]
    if len(x) < 2:
        raise ShapeError(f"`channel_shuffle` needs a (C, *spatial) input, got {fmt_shape(x)}",
                         code="E303", hint="torch shuffles channels of maps, not of vectors")
    if x[0] % a.groups:
        raise ShapeError(f"`groups` (={a.groups}) must divide the {x[0]} input channels",
                         hint="choose a divisor of the channel count")
    return x


def _shuffle_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """(N, g, C/g, *s) -> swap the two channel axes -> (N, C, *s); 0 keeps the batch."""
    g, (c, *spatial) = ctx.attrs.groups, ctx.x
    b.node("Reshape", [inputs[0], b.const("grouped_shape", [0, g, c // g, *spatial], "int64")],
           [b.tmp("grouped")])
    b.node("Transpose", [b.tmp("grouped")], [b.tmp("swapped")],
           perm=[0, 2, 1, *range(3, len(spatial) + 3)])
    b.node("Reshape", [b.tmp("swapped"), b.const("shape", [0, *ctx.x], "int64")], [output])


register(OpDef(channels_first=True,
               name="channel_shuffle", attrs=ShuffleAttrs, infer=_shuffle_infer, cost=_moved,
               step=lambda ctx: POINTWISE, category=Category.MOVE, fresh_output=False,
               torch=lambda ctx: module("torch.nn.ChannelShuffle", ctx.attrs.groups),
               onnx=_shuffle_onnx, positional=("groups",),
               doc="ShuffleNet's channel shuffle (nn.ChannelShuffle) of a (C, *spatial) input: "
                   "the channels as a `groups` x C/groups matrix, transposed. Shape unchanged; "
                   "FLOPs 0."))

# ------------------------------------------------------------------------ mean


class MeanAttrs(Attrs):
    dims: int | tuple[int, ...]
    keepdim: bool = False


def _mean_dims(x: Shape, a: MeanAttrs) -> tuple[int, ...]:
    dims = (a.dims,) if isinstance(a.dims, int) else a.dims
    out = tuple(sorted({norm_dim("mean", x, d) for d in dims}))
    if len(out) != len(dims) or not out:
        raise ShapeError(f"`mean` dims {a.dims} must be distinct and at least one",
                         hint="e.g. mean([1, 2]) averages the spatial dims of a (C, H, W) map")
    return out


def _mean_infer(inputs: tuple[Shape, ...], a: MeanAttrs) -> Shape:
    x = inputs[0]
    dims = _mean_dims(x, a)
    if a.keepdim:
        return tuple(1 if i in dims else n for i, n in enumerate(x))
    return tuple(n for i, n in enumerate(x) if i not in dims)


def _mean_step(ctx: Ctx) -> Step:
    """Global once the first spatial dim is averaged (or moves, channels dropped)."""
    dims = _mean_dims(ctx.x, ctx.attrs)
    return GLOBAL if 1 in dims or (0 in dims and not ctx.attrs.keepdim) else POINTWISE


def _mean_torch(ctx: Ctx) -> Function:
    dims = tuple(d + 1 for d in _mean_dims(ctx.x, ctx.attrs))
    return function("torch.mean", dim=dims, **changed({"keepdim": False},
                                                      keepdim=ctx.attrs.keepdim))


def _mean_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """ReduceMean: ``axes`` an attribute up to opset 17, an input from 18."""
    axes = [d + 1 for d in _mean_dims(ctx.x, ctx.attrs)]
    keep = int(ctx.attrs.keepdim)
    if b.opset >= 18:
        b.node("ReduceMean", [inputs[0], b.const("axes", axes, "int64")], [output],
               keepdims=keep)
    else:
        b.node("ReduceMean", inputs, [output], axes=axes, keepdims=keep)


register(OpDef(name="mean", attrs=MeanAttrs, infer=_mean_infer, step=_mean_step,
               cost=lambda ctx: Cost(flops=numel(ctx.x), in_numel=numel(ctx.x),
                                     out_numel=numel(ctx.out)),
               torch=_mean_torch, onnx=_mean_onnx, category=Category.REDUCE,
               positional=("dims", "keepdim"),
               doc="Mean over per-sample `dims` (an int or a list; 0 = channels), dropped "
                   "unless `keepdim`. FLOPs: 1 per input element."))

# ------------------------------------------------------------------------ slice, select


class SliceAttrs(PositiveAttrs):
    positive_fields = ("step",)
    dim: int
    start: int = 0
    end: int | None = None
    step: int = 1


def _slice_range(x: Shape, a: SliceAttrs) -> range:
    """The indices kept, Python's slice rules (negative from the end, clamped)."""
    d = norm_dim("slice", x, a.dim)
    kept = range(*slice(a.start, a.end, a.step).indices(x[d]))
    if not kept:
        raise ShapeError(f"`slice` {a.start}:{a.end}:{a.step} of dim {a.dim} (size {x[d]}) is "
                         "empty", hint="start must come before end, inside the dim")
    return kept


def _slice_infer(inputs: tuple[Shape, ...], a: SliceAttrs) -> Shape:
    x = inputs[0]
    d = norm_dim("slice", x, a.dim)
    return (*x[:d], len(_slice_range(x, a)), *x[d + 1:])


def _slice_step(ctx: Ctx) -> Step:
    """Striding the first spatial dim multiplies the jump by ``step``."""
    d = norm_dim("slice", ctx.x, ctx.attrs.dim)
    return Step(stride=ctx.attrs.step) if d == 1 else POINTWISE


def _slice_torch(ctx: Ctx) -> Function | Module:
    kept = _slice_range(ctx.x, ctx.attrs)
    d = norm_dim("slice", ctx.x, ctx.attrs.dim) + 1
    if kept.step == 1:
        return function("torch.narrow", dim=d, start=kept.start, length=len(kept))
    return module("archspec.backends.modules.Slice", d, kept.start, kept.stop, kept.step)


def _slice_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    kept = _slice_range(ctx.x, ctx.attrs)
    _const_slice(b, inputs, output, norm_dim("slice", ctx.x, ctx.attrs.dim) + 1, kept.start,
                 kept.start + len(kept) * kept.step, kept.step)


register(OpDef(name="slice", attrs=SliceAttrs, infer=_slice_infer, cost=_moved,
               step=_slice_step, torch=_slice_torch, onnx=_slice_onnx,
               category=Category.MOVE, fresh_output=False,
               positional=("dim", "start", "end", "step"),
               doc="Elements `start`:`end`:`step` of per-sample `dim` (Python's slice rules: "
                   "negative from the end; `end` none = to the end). FLOPs 0."))


class SelectAttrs(Attrs):
    dim: int
    index: int


def _select_index(x: Shape, a: SelectAttrs) -> tuple[int, int]:
    """The normalised dim and index."""
    d = norm_dim("select", x, a.dim)
    if not -x[d] <= a.index < x[d]:
        raise ShapeError(f"`select` index {a.index} is out of range for dim {a.dim} of size "
                         f"{x[d]}", hint="indices count from 0, or from -1 at the end")
    return d, a.index % x[d]


def _select_infer(inputs: tuple[Shape, ...], a: SelectAttrs) -> Shape:
    d, _ = _select_index(inputs[0], a)
    return inputs[0][:d] + inputs[0][d + 1:]


def _select_torch(ctx: Ctx) -> Function:
    d, i = _select_index(ctx.x, ctx.attrs)
    return function("torch.select", dim=d + 1, index=i)


def _select_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    d, i = _select_index(ctx.x, ctx.attrs)
    b.node("Gather", [inputs[0], b.const("index", i, "int64")], [output], axis=d + 1)


register(OpDef(name="select", attrs=SelectAttrs, infer=_select_infer, cost=_moved,
               step=lambda ctx: GLOBAL if _select_index(ctx.x, ctx.attrs)[0] <= 1
               else POINTWISE,
               torch=_select_torch, onnx=_select_onnx, category=Category.MOVE,
               fresh_output=False, positional=("dim", "index"),
               doc="Element `index` of per-sample `dim`, which is removed (torch.select). "
                   "FLOPs 0."))

# ------------------------------------------------------------------------ split, chunk


class SplitAttrs(PositiveAttrs):
    positive_fields = ("sizes",)
    sizes: int | tuple[int, ...]
    dim: int = 0
    index: int = 0


class ChunkAttrs(PositiveAttrs):
    positive_fields = ("n",)
    n: int
    dim: int = 0
    index: int = 0


def pieces(op: str, x: Shape, a: SplitAttrs | ChunkAttrs) -> list[int]:
    """The sizes of the pieces along ``dim``, as torch.split / torch.chunk cut them (chunk:
    pieces of ceil(n / chunks), so possibly fewer than ``n``)."""
    length = x[norm_dim(op, x, a.dim)]
    if isinstance(a, ChunkAttrs):
        size: int | tuple[int, ...] = math.ceil(length / a.n)
    else:
        size = a.sizes
    if isinstance(size, int):
        return [size] * (length // size) + ([length % size] if length % size else [])
    if sum(size) != length:
        raise ShapeError(f"`split` sizes {list(size)} add up to {sum(size)}, not to the "
                         f"{length} of dim {a.dim}", hint="make the sizes sum to the dim")
    return list(size)


def count(op: str, x: Shape, a: SplitAttrs | ChunkAttrs) -> int:
    """How many results a call gives; when the call is invalid (a bad dim, sizes that miss the
    dim's length), the nominal count, so that ``infer`` reports the error at the call."""
    try:
        return len(pieces(op, x, a))
    except ShapeError:
        if isinstance(a, ChunkAttrs):
            return a.n
        return 1 if isinstance(a.sizes, int) else len(a.sizes)


def make_split(op: str) -> OpDef:
    def piece(x: Shape, a: SplitAttrs | ChunkAttrs) -> tuple[int, int, int]:
        """Result ``index``'s batched axis, start and length."""
        sizes = pieces(op, x, a)
        if not 0 <= a.index < len(sizes):
            raise ShapeError(f"`{op}` gives {len(sizes)} pieces, there is no piece {a.index}",
                             hint=f"unpack {len(sizes)} names: a, b, ... = {op}(...)(x)")
        return norm_dim(op, x, a.dim) + 1, sum(sizes[:a.index]), sizes[a.index]

    def infer(inputs: tuple[Shape, ...], a: SplitAttrs | ChunkAttrs) -> Shape:
        x = inputs[0]
        axis, _, length = piece(x, a)
        return (*x[:axis - 1], length, *x[axis:])

    def to_torch(ctx: Ctx) -> Function:
        axis, start, length = piece(ctx.x, ctx.attrs)
        return function("torch.narrow", dim=axis, start=start, length=length)

    def to_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        axis, start, length = piece(ctx.x, ctx.attrs)
        _const_slice(b, inputs, output, axis, start, start + length)

    split = op == "split"
    return OpDef(
        name=op, attrs=SplitAttrs if split else ChunkAttrs, infer=infer, cost=_moved,
        step=lambda ctx: POINTWISE, torch=to_torch, onnx=to_onnx, category=Category.MOVE,
        fresh_output=False, positional=("sizes" if split else "n", "dim"),
        outputs=lambda inputs, a: count(op, inputs[0], a),
        doc=("Pieces of per-sample `dim` (torch.split): `sizes` an int (pieces of that size, "
             "the last smaller) or a list of sizes summing to the dim. "
             if split else
             "`n` pieces of per-sample `dim` (torch.chunk): each ceil(size / n), the last "
             "smaller, so there may be fewer than `n`. ")
        + "Several results, `a, b = " + ("split(4)" if split else "chunk(2)") + "(x)`: "
          "result `index` is a view (torch.narrow). FLOPs 0.")


for _op in ("split", "chunk"):
    register(make_split(_op))


# ------------------------------------------------------------------------ permute, transpose


class PermuteAttrs(Attrs):
    dims: tuple[int, ...]


def _permutation(x: Shape, a: PermuteAttrs) -> tuple[int, ...]:
    """The normalised order of the per-sample dims, checked to be a permutation."""
    if len(a.dims) != len(x):
        raise ShapeError(f"`permute` {list(a.dims)} orders {len(a.dims)} dims, the input "
                         f"{fmt_shape(x)} has {len(x)}",
                         hint="name every per-sample dim once (0 = the first after the batch)")
    order = tuple(norm_dim("permute", x, d) for d in a.dims)
    if len(set(order)) != len(order):
        raise ShapeError(f"`permute` {list(a.dims)} names a dim twice",
                         hint="name every per-sample dim once")
    return order


def _permute_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    b.node("Transpose", inputs, [output],
           perm=[0, *(d + 1 for d in _permutation(ctx.x, ctx.attrs))])


register(OpDef(name="permute", attrs=PermuteAttrs, cost=_moved, category=Category.MOVE,
               infer=lambda inputs, a: tuple(inputs[0][d] for d in _permutation(inputs[0], a)),
               step=lambda ctx: POINTWISE if _permutation(ctx.x, ctx.attrs)[:2] == (0, 1)
               else GLOBAL,
               torch=lambda ctx: function("torch.permute", dims=(0, *(
                   d + 1 for d in _permutation(ctx.x, ctx.attrs)))),
               onnx=_permute_onnx, fresh_output=False, positional=("dims",),
               doc="Reorders the per-sample dims: `permute([1, 2, 0])` turns a (C, H, W) map "
                   "into channels-last (H, W, C) (torch.permute; a view). FLOPs 0."))


class TransposeAttrs(Attrs):
    dim0: int
    dim1: int


def _swap(x: Shape, a: TransposeAttrs) -> tuple[int, ...]:
    """The per-sample order with ``dim0`` and ``dim1`` swapped."""
    order = list(range(len(x)))
    i, j = norm_dim("transpose", x, a.dim0), norm_dim("transpose", x, a.dim1)
    order[i], order[j] = order[j], order[i]
    return tuple(order)


def _transpose_torch(ctx: Ctx) -> Function:
    i, j = (norm_dim("transpose", ctx.x, d) + 1 for d in (ctx.attrs.dim0, ctx.attrs.dim1))
    return function("torch.transpose", dim0=i, dim1=j)


register(OpDef(name="transpose", attrs=TransposeAttrs, cost=_moved, category=Category.MOVE,
               infer=lambda inputs, a: tuple(inputs[0][d] for d in _swap(inputs[0], a)),
               step=lambda ctx: POINTWISE if _swap(ctx.x, ctx.attrs)[:2] == (0, 1) else GLOBAL,
               torch=_transpose_torch, fresh_output=False, positional=("dim0", "dim1"),
               onnx=lambda ctx, b, inputs, output: b.node(
                   "Transpose", inputs, [output], perm=[0, *(d + 1 for d in _swap(ctx.x,
                                                                               ctx.attrs))]),
               doc="Swaps per-sample dims `dim0` and `dim1` (torch.transpose; a view): "
                   "`transpose(0, 1)` turns (features, tokens) into (tokens, features). "
                   "FLOPs 0."))

# ------------------------------------------------------------------------ reshape


class ReshapeAttrs(Attrs):
    shape: tuple[int, ...]


def _reshape_infer(inputs: tuple[Shape, ...], a: ReshapeAttrs) -> Shape:
    """The per-sample ``shape``, one dim of which may be -1 (what is left)."""
    x, shape = inputs[0], a.shape
    size = numel(x)
    known = math.prod(d for d in shape if d != -1)
    if shape.count(-1) > 1 or any(d < 1 and d != -1 for d in shape):
        raise ShapeError(f"`reshape` {list(shape)} may hold one -1, the other dims positive",
                         hint="-1 stands for what is left of the elements")
    if -1 in shape and size % known:
        raise ShapeError(f"`reshape` {list(shape)}: the other dims (product {known:,}) do not "
                         f"divide the {size:,} elements of a {fmt_shape(x)} input, so -1 has "
                         "no whole size", hint="the given dims must divide the input's element "
                                               "count (per sample); -1 is what is left")
    out = tuple(size // known if d == -1 else d for d in shape)
    if numel(out) != size:
        raise ShapeError(f"`reshape` {list(shape)} cannot hold the {size:,} elements of a "
                         f"{fmt_shape(x)} input", hint="the dims must multiply to the input's "
                                                        "element count (per sample)")
    return out


register(OpDef(name="reshape", attrs=ReshapeAttrs, infer=_reshape_infer, cost=_moved,
               category=Category.MOVE, step=lambda ctx: GLOBAL, fresh_output=False,
               torch=lambda ctx: function("torch.reshape", shape=(-1, *ctx.out)),
               onnx=lambda ctx, b, inputs, output: b.node(
                   "Reshape", [inputs[0], b.const("shape", [0, *ctx.out], "int64")], [output]),
               positional=("shape",),
               doc="The per-sample elements in a new `shape` (a list; one dim may be -1, what "
                   "is left: `reshape([heads, -1, head_dim])`), in order (torch.reshape). "
                   "FLOPs 0."))

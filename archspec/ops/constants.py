"""Tensors that no input computes: a learnable ``parameter`` of any shape at the layer's own
key, a constant ``buffer`` from a generator (``arange``, a relative-position index), and
``take``, which indexes a tensor by such a buffer (an attention-bias table by its index).

These ops take no input (``take`` reads its index from one); their output is the same for
every sample. Shapes stay per sample: a tensor of shape S is S per sample, and the backends
hold it with a batch dim of 1 (``(1, *S)``), which broadcasts against the batch in element-wise
ops. The analysis counts such constant nodes once per forward, not once per sample
(:meth:`archspec.lang.network.Graph.constants`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator, model_validator

from archspec.ops.base import (
    POINTWISE,
    Attrs,
    Category,
    Cost,
    Ctx,
    Function,
    Learned,
    Module,
    OpDef,
    Shape,
    ShapeError,
    check_positive_float,
    function,
    module,
    numel,
)
from archspec.ops.registry import register
from archspec.ops.tensor import norm_dim

HELPERS = "archspec.backends.modules.tensors"
MAX_CONSTANT = 2**26
"""Most elements a parameter or buffer of this file may hold (67,108,864): beyond any table a
network keeps, so that a slip in a size is a located error, not a failed allocation."""

# ------------------------------------------------------------------------ parameter

Init = Literal["zeros", "ones", "constant", "normal", "trunc_normal", "uniform"]


class ParameterAttrs(Attrs):
    shape: tuple[int, ...]
    init: Init = "zeros"
    value: float = 0.0
    std: float = 0.02
    batch_dim: bool = False
    frozen: bool = False

    @model_validator(mode="after")
    def _spread(self) -> ParameterAttrs:
        check_positive_float(self, "std")  # torch's normal_ refuses std <= 0 when built
        return self

    @field_validator("shape")
    @classmethod
    def _sizes(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or min(v) < 1:
            raise ValueError(f"`shape` (={list(v)}) must list one or more positive sizes")
        if numel(v) > MAX_CONSTANT:
            raise ValueError(f"`shape` (={list(v)}) holds {numel(v):,} elements; at most "
                             f"{MAX_CONSTANT:,}")
        return v


def _parameter_shape(attrs: ParameterAttrs) -> Shape:
    """Per-sample shape: ``shape``, less its leading 1 when that stands for the batch."""
    if not attrs.batch_dim:
        return attrs.shape
    if attrs.shape[0] != 1 or len(attrs.shape) < 2:
        raise ShapeError(f"`parameter` with `batch_dim=true` needs a leading 1 before its "
                         f"sizes, got {list(attrs.shape)}",
                         hint="e.g. `parameter([1, 197, 384], batch_dim=true)` for a (197, 384) "
                              "tensor stored as (1, 197, 384)")
    return attrs.shape[1:]


def _parameter_torch(ctx: Ctx) -> Learned:
    a = ctx.attrs
    return Learned(module(f"{HELPERS}.parameter", a.shape, a.init, a.value, a.std, a.frozen),
                   function("torch.reshape", shape=(1, *ctx.out)))


def _parameter_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    b.node("Reshape", [b.param(None), b.const("shape", [1, *ctx.out], "int64")], [output])


register(OpDef(name="parameter", attrs=ParameterAttrs,
               infer=lambda i, a: _parameter_shape(a),
               cost=lambda ctx: Cost(params=numel(ctx.attrs.shape), out_numel=numel(ctx.out)),
               torch=_parameter_torch, onnx=_parameter_onnx, category=Category.MOVE,
               step=lambda ctx: POINTWISE, inputs=(0, 0), positional=("shape", "init"),
               doc="A learnable tensor of `shape` stored at the layer's own key (timm's "
                   "`cls_token`, `pos_embed`, `attn.q_bias`, `relative_position_bias_table`), "
                   "initialised by `init`: zeros, ones, constant (`value`), normal or "
                   "trunc_normal (`std`, cut at -2 and 2 as timm's), uniform (0, 1). No input. "
                   "`batch_dim=true`: the leading 1 of `shape` is the batch ((1, T, D) is a "
                   "(T, D) tensor). `frozen=true`: not trained (requires_grad off). Params: "
                   "its elements; FLOPs 0."))

# ------------------------------------------------------------------------ buffer

Generator = Literal["arange", "relative_position_index", "relative_position_index_cls",
                    "attention_bias_index", "shifted_window_mask", "relative_coords_table",
                    "relative_position_index_3d", "shifted_window_mask_3d",
                    "scaled_offset_index"]
ARITY = {"arange": 1, "shifted_window_mask": 4, "relative_position_index_3d": 3,
         "shifted_window_mask_3d": 9}
"""Sizes each generator takes (2 where not listed)."""


class BufferAttrs(Attrs):
    generator: Generator
    size: tuple[int, ...]
    persistent: bool = False

    @model_validator(mode="after")
    def _sizes(self) -> BufferAttrs:
        """Positive sizes; the 3-D mask's three shifts (its last sizes) may be 0."""
        v = self.size
        sizes = v[:6] if self.generator == "shifted_window_mask_3d" else v
        if not v or min(sizes) < 1 or min(v) < 0:
            raise ValueError(f"`size` (={list(v)}) must list one or more positive sizes")
        return self


def _buffer_shape(a: BufferAttrs) -> Shape:
    """The shape each generator gives for its ``size``."""
    arity = ARITY.get(a.generator, 2)
    if len(a.size) != arity:
        raise ShapeError(f"`buffer(\"{a.generator}\")` takes {arity} size(s), got "
                         f"{list(a.size)}",
                         hint="`arange` takes [n], `shifted_window_mask` [height, width, window, "
                              "shift], `relative_position_index_3d` [t, h, w], "
                              "`shifted_window_mask_3d` [t, h, w, its window's 3 sides, its 3 "
                              "shifts], `scaled_offset_index` [queries, keys]; the other "
                              "generators take [height, width]")
    if a.generator == "arange":
        shape: Shape = a.size
    elif a.generator == "shifted_window_mask_3d":
        shape = _mask_3d_shape(a.size)
    elif a.generator == "relative_position_index_3d":
        n = numel(a.size)
        shape = (n, n)
    elif a.generator == "shifted_window_mask":
        h, w, window, shift = a.size
        if h % window or w % window or shift >= window:
            raise ShapeError(f"`buffer(\"shifted_window_mask\")` needs the map's sides (="
                             f"{h}x{w}) whole multiples of `window` (={window}) and a `shift` "
                             f"(={shift}) below it",
                             hint="give the (padded) map's height and width, the window and "
                                  "the shift: [56, 56, 7, 3]")
        n = window * window
        shape = ((h // window) * (w // window), n, n)
    elif a.generator == "relative_coords_table":
        shape = _coords_table_shape(a.size)
    elif a.generator == "scaled_offset_index":
        shape = a.size
    else:
        n = a.size[0] * a.size[1] + (a.generator == "relative_position_index_cls")
        shape = (n, n)
    if numel(shape) > MAX_CONSTANT:
        raise ShapeError(f"`buffer` of {numel(shape):,} elements; at most {MAX_CONSTANT:,}",
                         hint="check the window or grid size")
    return shape


def _mask_3d_shape(size: tuple[int, ...]) -> Shape:
    """(windows, N, N) for a t x h x w map cut into windows of N = wt x wh x ww tokens; each
    side a whole multiple of its window side, each shift below it."""
    sides, window, shift = size[:3], size[3:6], size[6:]
    if any(s % w or d >= w for s, w, d in zip(sides, window, shift, strict=True)):
        raise ShapeError(f"`buffer(\"shifted_window_mask_3d\")` needs the map's sides (="
                         f"{'x'.join(map(str, sides))}) whole multiples of the window's (="
                         f"{'x'.join(map(str, window))}) and each shift (={list(shift)}) below "
                         f"the window's side",
                         hint="give the (padded) map's t, h, w, the window's and the shifts: "
                              "[8, 56, 56, 8, 7, 7, 0, 3, 3]")
    windows = numel(tuple(s // w for s, w in zip(sides, window, strict=True)))
    return (windows, numel(window), numel(window))


def _coords_table_shape(size: tuple[int, ...]) -> Shape:
    """(2h-1, 2w-1, 2) for a window of [h, w]; each side at least 2, as the offsets are divided
    by side - 1."""
    h, w = size
    if min(h, w) < 2:
        raise ShapeError(f"`buffer(\"relative_coords_table\")` needs a window of at least 2 x 2, "
                         f"got {h}x{w}",
                         hint="the offsets are divided by (side - 1): a side of 1 has no offsets "
                              "to scale")
    return (2 * h - 1, 2 * w - 1, 2)


def _buffer_torch(ctx: Ctx) -> Module | Learned:
    """A non-persistent buffer inside a ``Constant`` module; a persistent one held at the
    layer's own key, as a parameter is."""
    a = ctx.attrs
    if a.persistent:
        return Learned(module(f"{HELPERS}.persistent_buffer", a.generator, a.size),
                       function("torch.unsqueeze", dim=0))
    return module(f"{HELPERS}.Constant", a.generator, a.size)


register(OpDef(name="buffer", attrs=BufferAttrs, infer=lambda i, a: _buffer_shape(a),
               cost=lambda ctx: Cost(buffers=numel(ctx.out) if ctx.attrs.persistent else 0,
                                     out_numel=numel(ctx.out)),
               torch=_buffer_torch,
               onnx=lambda ctx, b, inputs, output: b.node(
                   "Unsqueeze", [b.generated(ctx.attrs.generator, ctx.attrs.size),
                                 b.const("axes", [0], "int64")], [output]),
               category=Category.MOVE, step=lambda ctx: POINTWISE, inputs=(0, 0),
               positional=("generator", "size"),
               doc="A constant tensor (int64 indices, a float32 mask or table) made when the "
                   "network is built, kept out of the "
                   "state_dict (a non-persistent buffer, as timm keeps its indices); with "
                   "`persistent=true`, in it at the layer's own key (torchvision's Swin3D "
                   "`relative_position_index`), counted as buffers. No input. "
                   "`arange` [n]: 0..n-1. `relative_position_index` [h, w]: (hw, hw), the "
                   "index of each pair's offset in a (2h-1)(2w-1) table (Swin). "
                   "`relative_position_index_cls` [h, w]: (hw+1, hw+1), with three more table "
                   "rows for the class token (BEiT). `attention_bias_index` [h, w]: (hw, hw), "
                   "the index of each pair's absolute offset in order of first appearance "
                   "(LeViT, EfficientViT, TinyViT). `shifted_window_mask` [h, w, window, shift]: "
                   "(windows, N, N), N = window^2, Swin's attention mask of shifted windows of an "
                   "h x w map rolled by -shift: 0 where two tokens come from the same rolled "
                   "region, -100 elsewhere (float32). `relative_coords_table` [h, w]: (2h-1, "
                   "2w-1, 2), Swin v2's log-spaced relative coordinates, each offset (dh, dw) "
                   "scaled to 8 dh / (h-1), 8 dw / (w-1) and mapped by sign(t) log2(1 + |t|) / 3 "
                   "(float32), the input of its continuous position bias MLP. "
                   "`relative_position_index_3d` [t, h, w]: (thw, thw), the index of each "
                   "pair's offset in a (2t-1)(2h-1)(2w-1) table (Video Swin). "
                   "`shifted_window_mask_3d` [t, h, w, wt, wh, ww, st, sh, sw]: (windows, N, "
                   "N), N = wt wh ww, the mask of the t x h x w map rolled by -(st, sh, sw) and "
                   "cut into wt x wh x ww windows (a shift may be 0). `scaled_offset_index` [q, "
                   "k]: (q, k), the offset of query i and key j along one axis of q queries and "
                   "k keys, both scaled to the longer, as an index into a (2 max(q, k) - 1)-row "
                   "table: int(i max(k/q, 1) - (j + 1 - k) max(q/k, 1)) in float32 (MViT v2's "
                   "decomposed relative positions in time, height and width). FLOPs 0."))

# ------------------------------------------------------------------------ take


class TakeAttrs(Attrs):
    dim: int = 0


def _take_infer(inputs: tuple[Shape, ...], a: TakeAttrs) -> Shape:
    x, index = inputs
    d = norm_dim("take", x, a.dim)
    return (*x[:d], *index, *x[d + 1:])


def _take_torch(ctx: Ctx) -> Function:
    return function(f"{HELPERS}.take", dim=norm_dim("take", ctx.x, ctx.attrs.dim) + 1)


def _take_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    d = norm_dim("take", ctx.x, ctx.attrs.dim)
    b.node("Squeeze", [inputs[1], b.const("axes", [0], "int64")], [b.tmp("index")])
    b.node("Gather", [inputs[0], b.tmp("index")], [output], axis=d + 1)


register(OpDef(name="take", attrs=TakeAttrs, infer=_take_infer,
               cost=lambda ctx: Cost(in_numel=numel(ctx.out), out_numel=numel(ctx.out)),
               torch=_take_torch, onnx=_take_onnx, category=Category.MOVE,
               step=lambda ctx: POINTWISE, inputs=(2, 2), constant_inputs=(1,),
               positional=("dim",),
               doc="`take(dim)(x, index)`: the entries of `x` along per-sample `dim` at the "
                   "int64 `index` (a `buffer`, the same for every sample): dim `dim` becomes "
                   "index's shape, as `table[index]` indexes an attention-bias table. FLOPs 0."))

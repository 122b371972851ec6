"""Resizing ops: upsample (interpolation by a factor, to a size, or to another tensor's size)
and center_crop (to a size or to another tensor's size, U-Net's crop-and-concat).

Inputs are ``(C, *spatial)`` with 1 to 3 spatial dims; the channels are kept.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Literal

from pydantic import model_validator

from archspec.ops.base import (
    POINTWISE,
    Attrs,
    Category,
    Cost,
    Ctx,
    Function,
    IntOrTuple,
    Module,
    OpDef,
    Shape,
    ShapeError,
    Step,
    fmt_shape,
    function,
    module,
    numel,
    tuple_of,
)
from archspec.ops.registry import register

Mode = Literal["nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear"]

# Spatial rank each interpolating mode needs (torch's rule), input taps per output along one
# axis, and archspec's FLOPs per output element (3 per linear blend of two values).
_RANK = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
_TAPS = {"nearest": 1, "nearest-exact": 1, "linear": 2, "bilinear": 2, "trilinear": 2,
         "bicubic": 4}
_FLOPS = {"nearest": 0, "nearest-exact": 0, "linear": 3, "bilinear": 9, "trilinear": 21,
          "bicubic": 35}


class UpsampleAttrs(Attrs):
    scale: IntOrTuple | None = None
    size: IntOrTuple | None = None
    mode: Mode = "nearest"
    align_corners: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> UpsampleAttrs:
        if self.scale is not None and self.size is not None:
            raise ValueError(f"give `scale` (={self.scale}) or `size` (={self.size}), not both")
        for name in ("scale", "size"):
            value = getattr(self, name)
            if value is not None and min((value,) if isinstance(value, int) else value,
                                         default=0) < 1:
                raise ValueError(f"`{name}` (={value}) must be positive")
        if self.align_corners is not None and self.mode not in _RANK:
            raise ValueError(f"`align_corners` (={self.align_corners}) needs an interpolating "
                             f"mode (linear, bilinear, bicubic, trilinear), not {self.mode!r}")
        return self


def _spatial(op: str, x: Shape) -> int:
    """The number of spatial dims of a (C, *spatial) input, checked to be 1 to 3."""
    if not 2 <= len(x) <= 4:
        raise ShapeError(f"`{op}` needs a (C, L), (C, H, W) or (C, D, H, W) input, got "
                         f"{fmt_shape(x)}", code="E303", hint="check the layer order")
    return len(x) - 1


def _upsample_infer(inputs: tuple[Shape, ...], a: UpsampleAttrs) -> Shape:
    x = inputs[0]
    rank = _spatial("upsample", x)
    if a.mode in _RANK and _RANK[a.mode] != rank:
        raise ShapeError(f"mode {a.mode!r} needs {_RANK[a.mode]} spatial dim(s), the input "
                         f"{fmt_shape(x)} has {rank}", code="E303",
                         hint="linear: 1, bilinear and bicubic: 2, trilinear: 3 spatial dims")
    if len(inputs) == 2:
        ref = inputs[1]
        if a.scale is not None or a.size is not None:
            raise ShapeError("with a second input, the output takes its size: give neither "
                             "`scale` nor `size`", hint="drop `scale`/`size`, or the input")
        if len(ref) != len(x):
            raise ShapeError(f"the reference {fmt_shape(ref)} has not the {rank} spatial dim(s) "
                             f"of the input {fmt_shape(x)}", code="E305",
                             hint="resize to a tensor of the same rank (its channels may differ)")
        return (x[0], *ref[1:])
    if a.scale is None and a.size is None:
        raise ShapeError("`upsample` needs `scale`, `size` or a second input to take the size "
                         "of", hint="e.g. upsample(2), upsample(size=(32, 32)) or "
                                    "upsample(mode=\"bilinear\")(x, ref)")
    if a.size is not None:
        return (x[0], *tuple_of(a.size, rank, "size"))
    return (x[0], *(n * s for n, s in zip(x[1:], tuple_of(a.scale, rank, "scale"))))


def _category(mode: str, rank: int) -> Category:
    """fvcore counts only torch's 2-D nearest and bilinear kernels: each is its own category."""
    if rank == 2 and mode in ("nearest", "bilinear"):
        return Category.UPSAMPLE_NEAREST if mode == "nearest" else Category.UPSAMPLE_LINEAR
    return Category.UPSAMPLE_OTHER


def _upsample_cost(ctx: Ctx) -> Cost:
    mode = ctx.attrs.mode
    n = numel(ctx.out)
    return Cost(flops=_FLOPS[mode] * n, in_numel=numel(ctx.x), out_numel=n,
                category=_category(mode, len(ctx.x) - 1))


def _upsample_step(ctx: Ctx) -> Step:
    """The jump scales by in/out size; an output reads ``taps`` neighbouring inputs."""
    return Step(extra=_TAPS[ctx.attrs.mode] - 1, stride=Fraction(ctx.x[1], ctx.out[1]))


def _upsample_torch(ctx: Ctx) -> Function | Module:
    """``F.interpolate``, as torchvision calls it; a second input: a module that resizes to it
    at whatever size it has."""
    a: UpsampleAttrs = ctx.attrs
    corners = {} if a.align_corners is None else {"align_corners": a.align_corners}
    if len(ctx.inputs) == 2:
        return module("archspec.backends.modules.ResizeAs", a.mode, **corners)
    size = {"size": a.size} if a.size is not None else {"scale_factor": a.scale}
    return function("torch.nn.functional.interpolate", **size, mode=a.mode, **corners)


def _resize_attrs(a: UpsampleAttrs) -> dict[str, Any]:
    """ONNX Resize attributes reproducing torch's sampling for the mode."""
    if a.mode == "nearest":
        return {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                "nearest_mode": "floor"}
    if a.mode == "nearest-exact":
        return {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
                "nearest_mode": "round_prefer_ceil"}
    transform = "align_corners" if a.align_corners else "half_pixel"
    if a.mode == "bicubic":
        return {"mode": "cubic", "cubic_coeff_a": -0.75,
                "coordinate_transformation_mode": transform}
    return {"mode": "linear", "coordinate_transformation_mode": transform}


def _upsample_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """Resize to explicit sizes: the input's (dynamic) batch and channels, then the static
    spatial size, or the reference's. ONNX shape inference loses the batch dim through a
    Resize, so the output's shape is declared."""
    b.node("Shape", [inputs[0]], [b.tmp("in_shape")])
    b.node("Slice", [b.tmp("in_shape"), b.const("zero", [0], "int64"),
                     b.const("two", [2], "int64")], [b.tmp("batch_channels")])
    if len(inputs) == 2:
        b.node("Shape", [inputs[1]], [b.tmp("ref_shape")])
        b.node("Slice", [b.tmp("ref_shape"), b.const("two", [2], "int64"),
                         b.const("rank", [len(ctx.x) + 1], "int64")],
               [b.tmp("spatial")])
        spatial = b.tmp("spatial")
    else:
        spatial = b.const("spatial", list(ctx.out[1:]), "int64")
    b.node("Concat", [b.tmp("batch_channels"), spatial], [b.tmp("sizes")], axis=0)
    b.node("Resize", [inputs[0], "", "", b.tmp("sizes")], [output], **_resize_attrs(ctx.attrs))
    b.declare(output, ctx.out)


register(OpDef(
    channels_first=True,
    name="upsample", attrs=UpsampleAttrs, infer=_upsample_infer, cost=_upsample_cost,
    step=_upsample_step, torch=_upsample_torch, onnx=_upsample_onnx, inputs=(1, 2),
    positional=("scale",), aliases=("interpolate",), category=Category.UPSAMPLE_NEAREST,
    doc="Resize a (C, *spatial) input (F.interpolate) by an integer `scale` per spatial dim, to "
        "`size`, or, with a second input, to that input's spatial size: "
        "`y = upsample(mode=\"bilinear\")(x, ref)`. `mode`: nearest, nearest-exact, linear "
        "(1-D), bilinear, bicubic (2-D), trilinear (3-D); `align_corners` for the "
        "interpolating modes. FLOPs per output element: nearest 0, linear 3, bilinear 9, "
        "trilinear 21, bicubic 35. Category by mode: 2-D nearest upsample_nearest, 2-D "
        "bilinear upsample_linear, any other upsample_other."))


class CenterCropAttrs(Attrs):
    size: IntOrTuple | None = None


def _crop_target(inputs: tuple[Shape, ...], a: CenterCropAttrs) -> tuple[int, ...]:
    x = inputs[0]
    rank = _spatial("center_crop", x)
    if len(inputs) > 2:
        raise ShapeError(f"`center_crop` takes one input and an optional reference, got "
                         f"{len(inputs)} inputs", code="E214",
                         hint="center_crop(x, ref) crops x to the spatial size of ref")
    if (len(inputs) == 2) == (a.size is not None):
        raise ShapeError("`center_crop` needs exactly one of `size` and a second input",
                         hint="center_crop(size=(28, 28)) or center_crop(x, ref)")
    if a.size is not None:
        return tuple_of(a.size, rank, "size")
    if len(inputs[1]) != len(x):
        raise ShapeError(f"the reference {fmt_shape(inputs[1])} has not the {rank} spatial "
                         f"dim(s) of the input {fmt_shape(x)}", code="E305",
                         hint="crop to a tensor of the same rank (its channels may differ)")
    return inputs[1][1:]


def _crop_infer(inputs: tuple[Shape, ...], a: CenterCropAttrs) -> Shape:
    x = inputs[0]
    target = _crop_target(inputs, a)
    if any(t < 1 or t > n for n, t in zip(x[1:], target)):
        raise ShapeError(f"cannot crop {fmt_shape(x[1:])} to {fmt_shape(target)}", code="E305",
                         hint="the crop must fit inside the input (torchvision would pad)")
    return (x[0], *target)


def _crop_starts(ctx: Ctx) -> list[int]:
    """torchvision's offsets: ``int(round((n - size) / 2))`` (round half to even)."""
    return [int(round((n - t) / 2.0)) for n, t in zip(ctx.x[1:], ctx.out[1:])]


def _crop_torch(ctx: Ctx) -> Module:
    size = ctx.attrs.size
    args = () if size is None else (tuple_of(size, len(ctx.x) - 1, "size"),)
    return module("archspec.backends.modules.CenterCrop", *args)


def _crop_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    starts = _crop_starts(ctx)
    ends = [s + t for s, t in zip(starts, ctx.out[1:])]
    axes = list(range(2, len(ctx.x) + 1))
    b.node("Slice", [inputs[0], b.const("starts", starts, "int64"),
                     b.const("ends", ends, "int64"), b.const("axes", axes, "int64")], [output])


register(OpDef(
    channels_first=True,
    name="center_crop", attrs=CenterCropAttrs, infer=_crop_infer,
    cost=lambda ctx: Cost(in_numel=numel(ctx.out), out_numel=numel(ctx.out)),
    step=lambda ctx: POINTWISE, torch=_crop_torch, onnx=_crop_onnx, inputs=(1, None),
    category=Category.MOVE, fresh_output=False,
    doc="Crop the spatial dims of a (C, *spatial) input to `size` (int or one per spatial "
        "dim), or to the spatial size of a second input: `y = center_crop(x, ref)` (U-Net's "
        "crop-and-concat). Centred as torchvision's center_crop: offset round((n - size) / 2). "
        "FLOPs 0."))

"""Normalisation: batchnorm1d/2d/3d, group normalisation, layer normalisation (over the last
dim, and over the channels of a map: ConvNeXt's LayerNorm2d) and local response normalisation
(AlexNet)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import model_validator

from archspec.ops.base import (
    POINTWISE,
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
    fmt_shape,
    module,
    numel,
)
from archspec.ops.conv import folded_onnx
from archspec.ops.registry import register


class BatchNormAttrs(Attrs):
    eps: float = 1e-5
    momentum: float = 0.1
    affine: bool = True
    track_running_stats: bool = True

    @model_validator(mode="after")
    def _domains(self) -> BatchNormAttrs:
        check_positive_float(self, "eps")
        if not 0 <= self.momentum <= 1:
            raise ValueError(f"`momentum` (={self.momentum}) must be between 0 and 1")
        return self


def make_batchnorm(rank: int) -> OpDef:
    name = f"batchnorm{rank}d"
    allowed = (1, 2) if rank == 1 else (rank + 1,)

    def infer(inputs: tuple[Shape, ...], a: BatchNormAttrs) -> Shape:
        x = inputs[0]
        if len(x) not in allowed and not (rank == 2 and len(x) > 3):
            want = " or ".join(f"{n}-D" for n in allowed)
            raise ShapeError(f"`{name}` needs a {want} input per sample, got {fmt_shape(x)}",
                             hint="use the batchnorm whose rank matches the input", code="E303")
        return x

    def channels(x: Shape) -> int:
        """The channels: dim 0, or the first of a 2-D map after leading per-sample dims."""
        return x[-3] if rank == 2 else x[0]

    def cost(ctx: Ctx) -> Cost:
        c = channels(ctx.x)
        a: BatchNormAttrs = ctx.attrs
        n = numel(ctx.out)
        return Cost(params=2 * c if a.affine else 0,
                    buffers=2 * c + 1 if a.track_running_stats else 0,
                    flops=2 * n, in_numel=n, out_numel=n)

    def to_torch(ctx: Ctx) -> Module:
        """nn.BatchNorm{rank}d; on leading per-sample dims, its subclass that folds them into
        the batch (archspec.backends.modules.folded)."""
        a: BatchNormAttrs = ctx.attrs
        target = (f"torch.nn.BatchNorm{rank}d" if len(ctx.x) in allowed
                  else "archspec.backends.modules.folded.FoldedBatchNorm2d")
        return module(target, channels(ctx.x),
                      **changed({"eps": 1e-5, "momentum": 0.1, "affine": True,
                                 "track_running_stats": True},
                                eps=a.eps, momentum=a.momentum, affine=a.affine,
                                track_running_stats=a.track_running_stats))

    def to_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        a: BatchNormAttrs = ctx.attrs
        c = channels(ctx.x)
        if not a.track_running_stats:
            raise ShapeError("batch norm without running statistics has no inference form",
                             hint="set track_running_stats=true to export")
        scale = b.param("weight") if a.affine else b.const("scale", [1.0] * c)
        bias = b.param("bias") if a.affine else b.const("bias", [0.0] * c)
        def nodes(x: str, y: str) -> None:
            b.node("BatchNormalization",
                   [x, scale, bias, b.param("running_mean"), b.param("running_var")],
                   [y], epsilon=a.eps, momentum=1.0 - a.momentum)

        if len(ctx.x) in allowed:
            nodes(inputs[0], output)
        else:
            folded_onnx(b, ctx.x, ctx.out, (inputs[0], output), nodes)

    return OpDef(channels_first=True,
                 name=name, attrs=BatchNormAttrs, infer=infer, cost=cost,
                 category=Category.BATCHNORM, torch=to_torch, onnx=to_onnx,
                 step=lambda ctx: POINTWISE,
                 positional=("eps",),
                 doc=f"Batch normalisation over channel dim 0 of a {'/'.join(map(str, allowed))}"
                     "-D input: `eps`, `momentum`, `affine`, `track_running_stats`. "
                     "Params 2C, buffers 2C+1 (running mean, var, batch count)."
                     + (" Leading per-sample dims, (*G, C, H, W), are a batch of G maps "
                        "normalised alike (statistics over all of them), as conv2d takes them;"
                        " in torch an nn.BatchNorm2d subclass that folds them into the batch."
                        if rank == 2 else ""))


for _rank in (1, 2, 3):
    register(make_batchnorm(_rank))


class GroupNormAttrs(Attrs):
    groups: int
    eps: float = 1e-5
    affine: bool = True

    @model_validator(mode="after")
    def _positive(self) -> GroupNormAttrs:
        if self.groups < 1:
            raise ValueError(f"`groups` (={self.groups}) must be positive")
        check_positive_float(self, "eps")
        return self


def _groupnorm_infer(inputs: tuple[Shape, ...], a: GroupNormAttrs) -> Shape:
    x = inputs[0]
    if not 1 <= len(x) <= 4:
        raise ShapeError(f"`groupnorm` needs a (C, ...) input with at most 3 spatial dims, got "
                         f"{fmt_shape(x)}", code="E303")
    if x[0] % a.groups:
        raise ShapeError(f"`groups` (={a.groups}) must divide the {x[0]} input channels",
                         hint="choose a divisor of the channel count")
    return x


def _groupnorm_cost(ctx: Ctx) -> Cost:
    """Per element: mean 1, variance 2, normalise 2, and scale and shift 2 with ``affine``."""
    a: GroupNormAttrs = ctx.attrs
    n = numel(ctx.out)
    return Cost(params=2 * ctx.x[0] if a.affine else 0, flops=n * (7 if a.affine else 5),
                in_numel=n, out_numel=n)


def _groupnorm_torch(ctx: Ctx) -> Module:
    a: GroupNormAttrs = ctx.attrs
    return module("torch.nn.GroupNorm", a.groups, ctx.x[0],
                  **changed({"eps": 1e-5, "affine": True}, eps=a.eps, affine=a.affine))


def _groupnorm_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """GroupNormalization from opset 21 (per-channel scale, as torch; ONNX shape inference does
    not type its output, so the shape is declared); before it, torch's own export:
    InstanceNormalization over (N, groups, -1), then the per-channel affine."""
    a: GroupNormAttrs = ctx.attrs
    c = ctx.x[0]
    if b.opset >= 21:
        scale = b.param("weight") if a.affine else b.const("scale", [1.0] * c)
        bias = b.param("bias") if a.affine else b.const("shift", [0.0] * c)
        b.node("GroupNormalization", [inputs[0], scale, bias], [output], num_groups=a.groups,
               epsilon=a.eps)
        b.declare(output, ctx.out)
        return
    b.node("Reshape", [inputs[0], b.const("groups_shape", [0, a.groups, -1], "int64")],
           [b.tmp("grouped")])
    b.node("InstanceNormalization", [b.tmp("grouped"), b.const("ones", [1.0] * a.groups),
                                     b.const("zeros", [0.0] * a.groups)], [b.tmp("normed")],
           epsilon=a.eps)
    restored = b.tmp("restored") if a.affine else output
    b.node("Reshape", [b.tmp("normed"), b.const("shape", [0, *ctx.x], "int64")], [restored])
    if not a.affine:
        return
    per_channel = b.const("affine_shape", [c] + [1] * (len(ctx.x) - 1), "int64")
    b.node("Reshape", [b.param("weight"), per_channel], [b.tmp("w")])
    b.node("Reshape", [b.param("bias"), per_channel], [b.tmp("b")])
    b.node("Mul", [restored, b.tmp("w")], [b.tmp("scaled")])
    b.node("Add", [b.tmp("scaled"), b.tmp("b")], [output])


register(OpDef(channels_first=True,
               name="groupnorm", attrs=GroupNormAttrs, infer=_groupnorm_infer,
               cost=_groupnorm_cost, torch=_groupnorm_torch, onnx=_groupnorm_onnx,
               category=Category.GROUPNORM, step=lambda ctx: POINTWISE,
               positional=("groups", "eps"),
               doc="Group normalisation (nn.GroupNorm) of a (C, ...) input: the C channels in "
                   "`groups` groups, each normalised over its channels and positions; `eps`, "
                   "`affine`. Params 2C with `affine`; FLOPs 5 per element, 7 with `affine`; "
                   "receptive field unchanged (statistics are not counted, as for batch norm)."))


class LRNAttrs(Attrs):
    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    @model_validator(mode="after")
    def _positive(self) -> LRNAttrs:
        if self.size < 1:
            raise ValueError(f"`size` (={self.size}) must be positive")
        return self


def _lrn_cost(ctx: Ctx) -> Cost:
    """``positions``: the zero-padded squares its channel window averages over, (C + size - 1)
    per spatial position (torch pads the channels and average-pools them)."""
    n, size = numel(ctx.out), ctx.attrs.size
    return Cost(flops=n * (size + 3), in_numel=n, out_numel=n,
                positions=(ctx.x[0] + size - 1) * numel(ctx.x[1:]))


def _lrn_infer(inputs: tuple[Shape, ...], a: LRNAttrs) -> Shape:
    if len(inputs[0]) < 2:
        raise ShapeError(f"`lrn` needs a (C, ...) input, got {fmt_shape(inputs[0])}", code="E303")
    return inputs[0]


def _lrn_torch(ctx: Ctx) -> Module:
    a: LRNAttrs = ctx.attrs
    return module("torch.nn.LocalResponseNorm", a.size,
                  **changed({"alpha": 1e-4, "beta": 0.75, "k": 1.0},
                            alpha=a.alpha, beta=a.beta, k=a.k))


def _lrn_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    a: LRNAttrs = ctx.attrs
    b.node("LRN", inputs, [output], size=a.size, alpha=a.alpha, beta=a.beta, bias=a.k)


register(OpDef(channels_first=True,
               name="lrn", attrs=LRNAttrs, infer=_lrn_infer, cost=_lrn_cost, torch=_lrn_torch,
               onnx=_lrn_onnx, category=Category.LRN, step=lambda ctx: POINTWISE,
               positional=("size", "alpha", "beta", "k"), aliases=("local_response_norm",),
               doc="Local response normalisation across `size` channels (AlexNet): "
                   "b = a / (k + alpha/size * sum a^2)^beta. FLOPs: (size + 3) per element."))


class LayerNormAttrs(Attrs):
    eps: float = 1e-5
    affine: bool = True

    @model_validator(mode="after")
    def _positive(self) -> LayerNormAttrs:
        check_positive_float(self, "eps")
        return self


def layernorm_cost(dim: int) -> Callable[[Ctx], Cost]:
    """Cost rule of a layer norm over per-sample dim ``dim``. Per element: mean 1, variance 2,
    normalise 2, scale and shift 2 with ``affine`` (as group norm). ``positions``: the vectors
    normalised."""

    def cost(ctx: Ctx) -> Cost:
        n, d = numel(ctx.out), ctx.x[dim]
        return Cost(params=2 * d if ctx.attrs.affine else 0,
                    flops=n * (7 if ctx.attrs.affine else 5), in_numel=n, out_numel=n,
                    positions=n // d)

    return cost


def _layernorm_infer(inputs: tuple[Shape, ...], a: LayerNormAttrs) -> Shape:
    if not inputs[0]:
        raise ShapeError("`layernorm` needs an input with a features dim, got a scalar",
                         code="E303")
    return inputs[0]


def _layernorm_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """LayerNormalization over the last axis (opset 17)."""
    d = ctx.x[-1]
    scale = b.param("weight") if ctx.attrs.affine else b.const("scale", [1.0] * d)
    bias = b.param("bias") if ctx.attrs.affine else b.const("shift", [0.0] * d)
    b.node("LayerNormalization", [inputs[0], scale, bias], [output], axis=-1,
           epsilon=ctx.attrs.eps)


register(OpDef(name="layernorm", attrs=LayerNormAttrs, infer=_layernorm_infer,
               cost=layernorm_cost(-1), category=Category.LAYERNORM,
               step=lambda ctx: POINTWISE, min_opset=17, onnx=_layernorm_onnx,
               torch=lambda ctx: module("torch.nn.LayerNorm", ctx.x[-1], **changed(
                   {"eps": 1e-5, "elementwise_affine": True}, eps=ctx.attrs.eps,
                   elementwise_affine=ctx.attrs.affine)),
               positional=("eps",),
               doc="Layer normalisation (nn.LayerNorm) over the last dim of any input: the "
                   "features of each token, or the channels of a channels-last (H, W, C) map; "
                   "`eps`, `affine`. Params 2D with `affine`; FLOPs 5 per element, 7 with "
                   "`affine`."))


def _layernorm2d_infer(inputs: tuple[Shape, ...], a: LayerNormAttrs) -> Shape:
    if len(inputs[0]) != 3:
        raise ShapeError(f"`layernorm2d` needs a (C, H, W) map, got {fmt_shape(inputs[0])}",
                         hint="use `layernorm` over the last dim of other inputs", code="E303")
    return inputs[0]


def _layernorm2d_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """Channels last, LayerNormalization over the last axis, channels first (opset 17)."""
    c = ctx.x[0]
    scale = b.param("weight") if ctx.attrs.affine else b.const("scale", [1.0] * c)
    bias = b.param("bias") if ctx.attrs.affine else b.const("shift", [0.0] * c)
    b.node("Transpose", inputs, [b.tmp("last")], perm=[0, 2, 3, 1])
    b.node("LayerNormalization", [b.tmp("last"), scale, bias], [b.tmp("normed")], axis=-1,
           epsilon=ctx.attrs.eps)
    b.node("Transpose", [b.tmp("normed")], [output], perm=[0, 3, 1, 2])


register(OpDef(channels_first=True,
               name="layernorm2d", attrs=LayerNormAttrs, infer=_layernorm2d_infer,
               cost=layernorm_cost(0), category=Category.LAYERNORM2D,
               step=lambda ctx: POINTWISE, min_opset=17, onnx=_layernorm2d_onnx,
               torch=lambda ctx: module("archspec.backends.modules.LayerNorm2d", ctx.x[0],
                                        **changed({"eps": 1e-5, "elementwise_affine": True},
                                                  eps=ctx.attrs.eps,
                                                  elementwise_affine=ctx.attrs.affine)),
               positional=("eps",),
               doc="Layer normalisation over the channels of a (C, H, W) map at each position "
                   "(ConvNeXt's LayerNorm2d); `eps`, `affine`. Params 2C with `affine`; FLOPs "
                   "as `layernorm`."))

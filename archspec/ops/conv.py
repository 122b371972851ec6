"""Convolution and transposed convolution, each one entry generalised over rank: conv1d/2d/3d,
conv_transpose1d/2d/3d; and scaled_std_conv2d, a conv2d whose weight is standardised before
each use (timm's ScaledStdConv2d).

Input ``(C_in, *spatial)``, output ``(out, *spatial')`` with, per spatial dim,
``floor((n + 2p - d*(k-1) - 1) / s) + 1`` (convolution) or
``(n - 1)*s - 2p + d*(k-1) + output_padding + 1`` (transposed convolution). conv2d and conv3d
also take leading per-sample dims, ``(*G, C_in, H, W)`` or ``(*G, C_in, D, H, W)``: a batch of
G maps per sample (EfficientViT's windows, MViT's heads), each convolved alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Literal

from pydantic import model_validator

from archspec.ops.base import (
    MAX_CHANNELS,
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
    fmt_shape,
    module,
    numel,
    tuple_of,
    window_step,
)
from archspec.ops.registry import register
from archspec.ops.window import check_rank, dropped_warnings, out_size


def _check_domains(attrs: Any, non_negative: tuple[str, ...] = ("padding",)) -> Any:
    """Validator shared by both convolutions: `out` within 1..MAX_CHANNELS; kernel, stride,
    dilation and groups positive; the ``non_negative`` paddings at least 0."""
    check_range(attrs, ("out",), 1, MAX_CHANNELS)
    check_range(attrs, ("kernel", "stride", "dilation", "groups"), 1)
    check_range(attrs, non_negative, 0)
    return attrs


class ConvAttrs(Attrs):
    out: int
    kernel: IntOrTuple
    stride: IntOrTuple = 1
    padding: IntOrTuple | Literal["same", "valid"] = 0
    dilation: IntOrTuple = 1
    groups: int = 1
    bias: bool = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"

    @model_validator(mode="after")
    def _positive(self) -> ConvAttrs:
        return _check_domains(self)


def _geometry(attrs: ConvAttrs, rank: int) -> tuple[tuple[int, ...], ...]:
    k = tuple_of(attrs.kernel, rank, "kernel")
    s = tuple_of(attrs.stride, rank, "stride")
    d = tuple_of(attrs.dilation, rank, "dilation")
    if attrs.padding == "valid":
        p = (0,) * rank
    elif attrs.padding == "same":
        if any(x != 1 for x in s):
            raise ShapeError("`padding=\"same\"` needs stride 1", hint="give explicit padding")
        p = tuple(di * (ki - 1) // 2 for ki, di in zip(k, d))
    else:
        p = tuple_of(attrs.padding, rank, "padding")
    return k, s, d, p


def _same_extra(attrs: ConvAttrs, k: tuple[int, ...], d: tuple[int, ...]) -> tuple[int, ...]:
    """Extra end padding 'same' needs for even kernels (torch pads the far side)."""
    if attrs.padding != "same":
        return (0,) * len(k)
    return tuple((di * (ki - 1)) % 2 for ki, di in zip(k, d))


def _conv_nodes(b: Any, a: ConvAttrs, rank: int, x: str, weight: str, output: str) -> None:
    """A convolution of ``x`` with ``weight`` (and the layer's bias) as ONNX nodes: a Pad
    first for a padding mode other than zeros, then Conv."""
    k, s, d, p = _geometry(a, rank)
    ends = tuple(pi + ei for pi, ei in zip(p, _same_extra(a, k, d)))
    if a.padding_mode != "zeros" and any(p + ends):
        padded = b.tmp("pad")
        mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[a.padding_mode]
        pads = [0, 0, *p, 0, 0, *ends]
        b.node("Pad", [x, b.const("pads", pads, "int64")], [padded], mode=mode)
        x, p, ends = padded, (0,) * rank, (0,) * rank
    args = [x, weight] + ([b.param("bias")] if a.bias else [])
    b.node("Conv", args, [output], kernel_shape=list(k), strides=list(s),
           dilations=list(d), pads=[*p, *ends], group=a.groups)


def _check_pad_mode(mode: str, sizes: Shape, pads: tuple[int, ...],
                    extra: tuple[int, ...]) -> None:
    """The pads torch accepts for ``mode`` (measured: F.pad): ``reflect`` pads less than the
    input's size along each dim, ``circular`` at most that size; zeros and replicate any. ONNX
    runtimes accept more, so without this check the backends would disagree."""
    limit = {"reflect": 0, "circular": 1}.get(mode)
    if limit is None:
        return
    for n, before, after in zip(sizes, pads, (pi + ei for pi, ei in zip(pads, extra))):
        if max(before, after) > n - 1 + limit:
            bound = "less than" if mode == "reflect" else "at most"
            raise ShapeError(f"`padding_mode=\"{mode}\"` pads {max(before, after)} on a dim of "
                             f"size {n}; torch needs {bound} the size", code="E302",
                             hint="use less padding, a larger input or padding_mode=\"zeros\"")


FOLDED_RANKS = (2, 3)
"""The convolutions that take leading per-sample dims (a batch of maps per sample)."""


def _maps(name: str, x: Shape, rank: int) -> tuple[Shape, Shape]:
    """``x`` as its leading dims and one ``(C, *spatial)`` map: conv2d and conv3d take
    ``(*G, C, *spatial)``, a batch of G maps per sample; conv1d one map, no leading dims."""
    if rank in FOLDED_RANKS and len(x) > rank + 1:
        return x[:-rank - 1], x[-rank - 1:]
    return (), check_rank(name, x, rank)


def folded_onnx(b: Any, x: Shape, out: Shape, names: tuple[str, str],
                nodes: Callable[[str, str], None], rank: int = 2) -> None:
    """``nodes(x, y)``, one map's ONNX nodes ((N, C, *spatial) -> (N, C', *spatial')), on the
    input ``names[0]`` of per-sample shape ``x`` = (*G, C, *spatial) with ``rank`` spatial
    dims, writing ``names[1]`` of shape ``out``: Reshape to (N * G, C, *spatial), the nodes,
    Reshape back to (N, *G, C', *spatial')."""
    b.node("Reshape", [names[0], b.const("fold_shape", [-1, *x[-rank - 1:]], "int64")],
           [b.tmp("folded")])
    nodes(b.tmp("folded"), b.tmp("maps"))
    b.node("Reshape", [b.tmp("maps"), b.const("unfold_shape", [-1, *out], "int64")],
           [names[1]])
    b.declare(names[1], out)  # shape inference cannot tell N from the -1


_TORCH_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True,
                   "padding_mode": "zeros"}


def make_conv(rank: int) -> OpDef:
    name = f"conv{rank}d"

    def infer(inputs: tuple[Shape, ...], attrs: ConvAttrs) -> Shape:
        lead, x = _maps(name, inputs[0], rank)
        cin = x[0]
        if cin % attrs.groups or attrs.out % attrs.groups:
            raise ShapeError(
                f"`in_channels` (={cin}) and `out` (={attrs.out}) must be divisible by "
                f"`groups` (={attrs.groups})", hint="change `groups` or the channel counts")
        k, s, d, p = _geometry(attrs, rank)
        extra = _same_extra(attrs, k, d)
        _check_pad_mode(attrs.padding_mode, x[1:], p, extra)
        spatial = tuple(out_size(n, ki, si, pi, di, end_pad=pi + ei)
                        for n, ki, si, pi, di, ei in zip(x[1:], k, s, p, d, extra))
        if any(v < 1 for v in spatial):
            raise ShapeError(
                f"output size {fmt_shape(spatial)} is not positive: input {fmt_shape(x)} is too "
                f"small for kernel {k}, stride {s}, padding {p}, dilation {d}",
                hint="use a larger input, more padding or a smaller kernel", code="E302")
        return (*lead, attrs.out, *spatial)

    def cost(ctx: Ctx) -> Cost:
        a: ConvAttrs = ctx.attrs
        k = tuple_of(a.kernel, rank, "kernel")
        per_out = (ctx.x[-rank - 1] // a.groups) * math.prod(k)
        n_out = numel(ctx.out)
        weights = a.out * per_out
        bias = n_out if a.bias else 0
        return Cost(params=weights + (a.out if a.bias else 0), macs=n_out * per_out, bias=bias,
                    flops=2 * n_out * per_out + bias, in_numel=numel(ctx.x), out_numel=n_out)

    def step(ctx: Ctx) -> Step:
        k, s, d, _ = _geometry(ctx.attrs, rank)
        return window_step(k[0], s[0], d[0])

    def warn(inputs: tuple[Shape, ...], attrs: ConvAttrs) -> list[str]:
        k, s, d, p = _geometry(attrs, rank)
        return dropped_warnings(inputs[0][-rank:], k, s, p, d)

    dims, primed = ", ".join("DHW"[-rank:]), ", ".join(f"{c}'" for c in "DHW"[-rank:])
    example = {2: "the windows of EfficientViT", 3: "the heads of MViT's pooling"}.get(rank)

    def to_torch(ctx: Ctx) -> Module:
        """nn.Conv{rank}d; on leading per-sample dims, its subclass that folds them into the
        batch (archspec.backends.modules.folded)."""
        a: ConvAttrs = ctx.attrs
        target = (f"torch.nn.Conv{rank}d" if len(ctx.x) == rank + 1
                  else f"archspec.backends.modules.folded.FoldedConv{rank}d")
        return module(target, ctx.x[-rank - 1], a.out, a.kernel,
                      **changed(_TORCH_DEFAULTS, stride=a.stride, padding=a.padding,
                                dilation=a.dilation, groups=a.groups, bias=a.bias,
                                padding_mode=a.padding_mode))

    def to_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        def nodes(x: str, y: str) -> None:
            _conv_nodes(b, ctx.attrs, rank, x, b.param("weight"), y)

        if len(ctx.x) == rank + 1:
            nodes(inputs[0], output)
        else:
            folded_onnx(b, ctx.x, ctx.out, (inputs[0], output), nodes, rank)

    return OpDef(
        channels_first=True,
        name=name, attrs=ConvAttrs, infer=infer, cost=cost, step=step, warn=warn,
        torch=to_torch, onnx=to_onnx,
        positional=("out", "kernel", "stride", "padding"), category=Category.WEIGHTED,
        doc=f"{rank}-D convolution. Input (C, {'x'.join('DHW'[-rank:])}); `out` channels, "
            "`kernel`, `stride`, `padding` (int, tuple, \"same\" or \"valid\"), `dilation`, "
            "`groups`, `bias`, `padding_mode` (zeros|reflect|replicate|circular)."
            + (f" Leading per-sample dims, (*G, C, {dims}), are a batch of G maps "
               f"convolved alike ({example}), output (*G, out, {primed}), MACs G times one "
               f"map's; in torch an nn.Conv{rank}d subclass that folds them into the batch."
               if rank in FOLDED_RANKS else ""),
    )


CONVS = {rank: register(make_conv(rank)) for rank in (1, 2, 3)}


class ConvTransposeAttrs(Attrs):
    out: int
    kernel: IntOrTuple
    stride: IntOrTuple = 1
    padding: IntOrTuple = 0
    output_padding: IntOrTuple = 0
    groups: int = 1
    bias: bool = True
    dilation: IntOrTuple = 1

    @model_validator(mode="after")
    def _positive(self) -> ConvTransposeAttrs:
        return _check_domains(self, ("padding", "output_padding"))


def _transposed_geometry(a: ConvTransposeAttrs, rank: int) -> tuple[tuple[int, ...], ...]:
    """Per-dim kernel, stride, padding, dilation and output padding; torch's rule that the
    output padding be smaller than the stride or the dilation."""
    k, s, p, d, op = (tuple_of(v, rank, n) for v, n in (
        (a.kernel, "kernel"), (a.stride, "stride"), (a.padding, "padding"),
        (a.dilation, "dilation"), (a.output_padding, "output_padding")))
    if any(o >= max(si, di) for o, si, di in zip(op, s, d)):
        raise ShapeError(f"`output_padding` (={a.output_padding}) must be smaller than `stride` "
                         f"(={a.stride}) or `dilation` (={a.dilation})",
                         hint="output_padding only picks one of the `stride` possible sizes")
    return k, s, p, d, op


_TRANSPOSED_DEFAULTS = {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1,
                        "bias": True, "dilation": 1}


def make_conv_transpose(rank: int) -> OpDef:
    name = f"conv_transpose{rank}d"

    def infer(inputs: tuple[Shape, ...], a: ConvTransposeAttrs) -> Shape:
        x = check_rank(name, inputs[0], rank)
        if x[0] % a.groups or a.out % a.groups:
            raise ShapeError(
                f"`in_channels` (={x[0]}) and `out` (={a.out}) must be divisible by "
                f"`groups` (={a.groups})", hint="change `groups` or the channel counts")
        k, s, p, d, op = _transposed_geometry(a, rank)
        spatial = tuple((n - 1) * si - 2 * pi + di * (ki - 1) + oi + 1
                        for n, ki, si, pi, di, oi in zip(x[1:], k, s, p, d, op))
        if any(v < 1 for v in spatial):
            raise ShapeError(f"output size {fmt_shape(spatial)} is not positive: `padding` "
                             f"(={a.padding}) crops more than the {fmt_shape(x)} input gives",
                             hint="use less padding", code="E302")
        return (a.out, *spatial)

    def cost(ctx: Ctx) -> Cost:
        """Every input element meets (out/groups) * prod(kernel) weights."""
        a: ConvTransposeAttrs = ctx.attrs
        per_in = (a.out // a.groups) * math.prod(tuple_of(a.kernel, rank, "kernel"))
        n_in, n_out = numel(ctx.x), numel(ctx.out)
        bias = n_out if a.bias else 0
        return Cost(params=ctx.x[0] * per_in + (a.out if a.bias else 0), macs=n_in * per_in,
                    bias=bias, flops=2 * n_in * per_in + bias, in_numel=n_in, out_numel=n_out,
                    positions=numel(ctx.out[1:]))

    def step(ctx: Ctx) -> Step:
        """The jump divides by the stride; one output reads at most floor(d*(k-1)/s) + 1
        neighbouring inputs."""
        k, s, _, d, _ = _transposed_geometry(ctx.attrs, rank)
        return Step(extra=d[0] * (k[0] - 1) // s[0], stride=Fraction(1, s[0]))

    def to_torch(ctx: Ctx) -> Module:
        a: ConvTransposeAttrs = ctx.attrs
        return module(f"torch.nn.ConvTranspose{rank}d", ctx.x[0], a.out, a.kernel,
                      **changed(_TRANSPOSED_DEFAULTS, stride=a.stride, padding=a.padding,
                                output_padding=a.output_padding, groups=a.groups, bias=a.bias,
                                dilation=a.dilation))

    def to_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        a: ConvTransposeAttrs = ctx.attrs
        k, s, p, d, op = _transposed_geometry(a, rank)
        args = [inputs[0], b.param("weight")] + ([b.param("bias")] if a.bias else [])
        b.node("ConvTranspose", args, [output], kernel_shape=list(k), strides=list(s),
               pads=[*p, *p], dilations=list(d), output_padding=list(op), group=a.groups)

    return OpDef(
        channels_first=True,
        name=name, attrs=ConvTransposeAttrs, infer=infer, cost=cost, step=step,
        torch=to_torch, onnx=to_onnx, category=Category.TRANSPOSED,
        positional=("out", "kernel", "stride", "padding"),
        doc=f"{rank}-D transposed convolution (nn.ConvTranspose{rank}d). Input "
            f"(C, {'x'.join('DHW'[-rank:])}); `out` channels, `kernel`, `stride`, `padding`, "
            "`output_padding`, `groups`, `bias`, `dilation`. Per dim (n-1)*s - 2p + d*(k-1) + "
            "output_padding + 1. Params C*(out/groups)*prod(k) (+out); MACs in_numel * "
            "(out/groups) * prod(k).",
    )


CONV_TRANSPOSES = {rank: register(make_conv_transpose(rank)) for rank in (1, 2, 3)}


# ------------------------------------------------------------------- scaled_std_conv2d

class ScaledStdConvAttrs(ConvAttrs):
    """conv2d's attributes, with the standardisation's ``gamma`` and ``eps``."""

    gamma: float = 1.0
    eps: float = 1e-6

    @model_validator(mode="after")
    def _finite(self) -> ScaledStdConvAttrs:
        if not math.isfinite(self.gamma):
            raise ValueError(f"`gamma` (={self.gamma}) must be a finite number")
        if not 0 < self.eps < math.inf:
            raise ValueError(f"`eps` (={self.eps}) must be a positive number")
        return self


def _std_conv_infer(inputs: tuple[Shape, ...], attrs: ScaledStdConvAttrs) -> Shape:
    check_rank("scaled_std_conv2d", inputs[0], 2)
    return CONVS[2].infer(inputs, attrs)


def _std_conv_cost(ctx: Ctx) -> Cost:
    """conv2d's cost, with the gain's ``out`` parameters; the standardisation of the weight
    (its mean, variance and scaling, about 5 FLOPs per weight element) is the same for every
    sample, so it is work once per forward (:attr:`Cost.once`), over the weight's elements."""
    conv = CONVS[2].cost(ctx)
    weights = conv.params - (ctx.attrs.out if ctx.attrs.bias else 0)
    return Cost(params=conv.params + ctx.attrs.out, macs=conv.macs, bias=conv.bias,
                flops=conv.flops, in_numel=conv.in_numel, out_numel=conv.out_numel,
                once=Cost(flops=5 * weights, in_numel=weights, out_numel=weights,
                          category=Category.WEIGHT_STANDARDISATION))


def _std_conv_torch(ctx: Ctx) -> Module:
    a: ScaledStdConvAttrs = ctx.attrs
    return module("archspec.backends.modules.std_conv.ScaledStdConv2d", ctx.x[0], a.out,
                  a.kernel, **changed({**_TORCH_DEFAULTS, "gamma": 1.0, "eps": 1e-6},
                                      stride=a.stride, padding=a.padding, dilation=a.dilation,
                                      groups=a.groups, bias=a.bias,
                                      padding_mode=a.padding_mode, gamma=a.gamma, eps=a.eps))


def _std_conv_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """The weight standardised per output channel (ReduceMean, Sub, ReduceMean of the squares,
    Add eps, Sqrt, Div), times gain x gamma / sqrt(fan-in), then conv2d's lowering with it."""
    a: ScaledStdConvAttrs = ctx.attrs
    cin = ctx.x[0] // a.groups
    k = tuple_of(a.kernel, 2, "kernel")
    fan_in = cin * math.prod(k)
    shape = [a.out, cin, *k]
    flat = b.tmp("w_flat")
    rows = b.const("w_rows_shape", [a.out, fan_in], "int64")
    b.node("Reshape", [b.param("weight"), rows], [flat])

    def mean(x: str, out: str) -> None:
        if b.opset >= 18:
            b.node("ReduceMean", [x, b.const("w_axes", [1], "int64")], [out], keepdims=1)
        else:
            b.node("ReduceMean", [x], [out], axes=[1], keepdims=1)

    mean(flat, b.tmp("w_mean"))
    b.node("Sub", [flat, b.tmp("w_mean")], [b.tmp("w_centred")])
    b.node("Mul", [b.tmp("w_centred"), b.tmp("w_centred")], [b.tmp("w_squares")])
    mean(b.tmp("w_squares"), b.tmp("w_var"))
    b.node("Add", [b.tmp("w_var"), b.const("eps", a.eps)], [b.tmp("w_var_eps")])
    b.node("Sqrt", [b.tmp("w_var_eps")], [b.tmp("w_std")])
    b.node("Div", [b.tmp("w_centred"), b.tmp("w_std")], [b.tmp("w_unit")])
    b.node("Reshape", [b.param("gain"), b.const("gain_shape", [a.out, 1], "int64")],
           [b.tmp("gain_rows")])
    b.node("Mul", [b.tmp("gain_rows"), b.const("scale", a.gamma * fan_in ** -0.5)],
           [b.tmp("gain_scaled")])
    b.node("Mul", [b.tmp("w_unit"), b.tmp("gain_scaled")], [b.tmp("w_scaled")])
    weight = b.tmp("w_std_weight")
    b.node("Reshape", [b.tmp("w_scaled"), b.const("w_shape", shape, "int64")], [weight])
    _conv_nodes(b, a, 2, inputs[0], weight, output)


SCALED_STD_CONV2D = register(OpDef(
    channels_first=True,
    name="scaled_std_conv2d", attrs=ScaledStdConvAttrs, infer=_std_conv_infer,
    cost=_std_conv_cost, step=CONVS[2].step, warn=CONVS[2].warn, torch=_std_conv_torch,
    onnx=_std_conv_onnx, positional=("out", "kernel", "stride", "padding"),
    category=Category.SCALED_STD_CONV,
    doc="2-D convolution with scaled weight standardisation (timm's ScaledStdConv2d, NFNet): "
        "before each use, every output channel's weight gets mean 0 and variance 1 over its "
        "fan-in (biased variance + `eps`), times a learnable `gain` (state_dict key "
        "`<path>.gain`, out x 1 x 1 x 1, starting at 1) and `gamma` / sqrt(fan-in). conv2d's "
        "attributes (`out`, `kernel`, `stride`, `padding`, `dilation`, `groups`, `bias`, "
        "`padding_mode`) with `gamma` (1.0) and `eps` (1e-6, timm's default). Params: conv2d's "
        "+ out; MACs: conv2d's.",
))

"""Pooling: max/avg (1-3 D, ceil_mode, padding), adaptive max/avg and global average/max.

Input ``(C, *spatial)``; output keeps ``C``. Windowed: per dim ``out_size(n, k, s, p, d, ceil)``.
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


class PoolAttrs(Attrs):
    kernel: IntOrTuple
    stride: IntOrTuple | None = None
    padding: IntOrTuple = 0
    dilation: IntOrTuple = 1
    ceil: bool = False
    count_include_pad: bool = True

    @model_validator(mode="after")
    def _domains(self) -> PoolAttrs:
        check_range(self, ("kernel", "stride", "dilation"), 1)
        check_range(self, ("padding",), 0)
        return self


def _geometry(a: PoolAttrs, rank: int) -> tuple[tuple[int, ...], ...]:
    k = tuple_of(a.kernel, rank, "kernel")
    s = tuple_of(a.stride if a.stride is not None else a.kernel, rank, "stride")
    p = tuple_of(a.padding, rank, "padding")
    d = tuple_of(a.dilation, rank, "dilation")
    if any(2 * pi > ki for pi, ki in zip(p, k)):
        raise ShapeError(f"`padding` (={a.padding}) must be at most half of `kernel` "
                         f"(={a.kernel})", hint="PyTorch rejects larger pooling padding")
    return k, s, p, d


def make_pool(kind: str, rank: int) -> OpDef:
    name = f"{kind}pool{rank}d"

    def infer(inputs: tuple[Shape, ...], a: PoolAttrs) -> Shape:
        x = check_rank(name, inputs[0], rank)
        if kind == "avg" and any(v != 1 for v in tuple_of(a.dilation, rank, "dilation")):
            raise ShapeError(f"`dilation` (={a.dilation}): average pooling has none in PyTorch",
                             hint="drop `dilation`, or use max pooling")
        k, s, p, d = _geometry(a, rank)
        spatial = tuple(out_size(n, ki, si, pi, di, a.ceil)
                        for n, ki, si, pi, di in zip(x[1:], k, s, p, d))
        if any(v < 1 for v in spatial):
            raise ShapeError(f"output size {fmt_shape(spatial)} is not positive: input "
                             f"{fmt_shape(x)} is too small for a {a.kernel} window",
                             hint="remove a pooling stage or use a larger input", code="E302")
        return (x[0], *spatial)

    def cost(ctx: Ctx) -> Cost:
        k = tuple_of(ctx.attrs.kernel, rank, "kernel")
        per = math.prod(k) - (1 if kind == "max" else 0)
        n = numel(ctx.out)
        return Cost(flops=n * per, in_numel=numel(ctx.x), out_numel=n)

    def step(ctx: Ctx) -> Step:
        k, s, _, d = _geometry(ctx.attrs, rank)
        return window_step(k[0], s[0], d[0])

    def warn(inputs: tuple[Shape, ...], a: PoolAttrs) -> list[str]:
        k, s, p, d = _geometry(a, rank)
        return dropped_warnings(inputs[0][1:], k, s, p, d, a.ceil)

    def to_torch(ctx: Ctx) -> Module:
        a: PoolAttrs = ctx.attrs
        common = changed({"stride": None, "padding": 0, "ceil_mode": False},
                         stride=a.stride, padding=a.padding, ceil_mode=a.ceil)
        if kind == "max":
            return module(f"torch.nn.MaxPool{rank}d", a.kernel,
                          **common, **changed({"dilation": 1}, dilation=a.dilation))
        return module(f"torch.nn.AvgPool{rank}d", a.kernel, **common,
                      **changed({"count_include_pad": True},
                                count_include_pad=a.count_include_pad))

    def to_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        a: PoolAttrs = ctx.attrs
        k, s, p, d = _geometry(a, rank)
        common = {"kernel_shape": list(k), "strides": list(s), "pads": [*p, *p],
                  "ceil_mode": int(a.ceil)}
        if kind == "max":
            b.node("MaxPool", inputs, [output], dilations=list(d), **common)
        else:
            b.node("AveragePool", inputs, [output], count_include_pad=int(a.count_include_pad),
                   **common)

    attrs_doc = "`kernel`, `stride` (default: kernel), `padding`, `dilation`, `ceil`"
    return OpDef(channels_first=True,
                 name=name, attrs=PoolAttrs, infer=infer, cost=cost, step=step, warn=warn,
                 torch=to_torch, onnx=to_onnx,
                 positional=("kernel", "stride", "padding"),
                 category=Category.MAXPOOL if kind == "max" else Category.AVGPOOL,
                 doc=f"{rank}-D {kind} pooling: {attrs_doc}"
                     + (", `count_include_pad`." if kind == "avg" else "."))


class AdaptiveAttrs(Attrs):
    output: IntOrTuple = 1

    @model_validator(mode="after")
    def _positive(self) -> AdaptiveAttrs:
        check_range(self, ("output",), 1)
        return self


def make_adaptive(kind: str, rank: int, glob: bool = False) -> OpDef:
    name = f"global_{kind}pool{rank}d" if glob else f"adaptive_{kind}pool{rank}d"

    def infer(inputs: tuple[Shape, ...], a: AdaptiveAttrs) -> Shape:
        x = check_rank(name, inputs[0], rank)
        return (x[0], *tuple_of(a.output, rank, "output"))

    def cost(ctx: Ctx) -> Cost:
        n_in, n_out = numel(ctx.x), numel(ctx.out)
        return Cost(flops=n_in, in_numel=n_in, out_numel=n_out)

    def to_torch(ctx: Ctx) -> Module:
        return module(f"torch.nn.Adaptive{kind.capitalize()}Pool{rank}d", ctx.attrs.output)

    def step(ctx: Ctx) -> Step:
        """Global when it pools to one position; otherwise an (approximate) window of
        ``in // out`` input positions per output."""
        n, o = ctx.x[1], ctx.out[1]
        return GLOBAL if o == 1 else window_step(-(-n // o), n // o)

    def to_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        spatial_in, spatial_out = ctx.x[1:], ctx.out[1:]
        if all(o == 1 for o in spatial_out):
            b.node("GlobalMaxPool" if kind == "max" else "GlobalAveragePool", inputs, [output])
            return
        if any(n % o for n, o in zip(spatial_in, spatial_out)):
            raise ShapeError(f"adaptive pooling from {fmt_shape(spatial_in)} to "
                             f"{fmt_shape(spatial_out)} has uneven windows, which ONNX cannot "
                             "express", hint="use an input size divisible by the output size")
        k = [n // o for n, o in zip(spatial_in, spatial_out)]
        b.node("MaxPool" if kind == "max" else "AveragePool", inputs, [output],
               kernel_shape=k, strides=k)

    return OpDef(channels_first=True,
                 name=name, attrs=AdaptiveAttrs, infer=infer, cost=cost, torch=to_torch,
                 onnx=to_onnx, step=step,
                 positional=() if glob else ("output",),
                 category=Category.ADAPTIVE_MAX if kind == "max" else Category.ADAPTIVE_AVG,
                 doc=(f"Global {kind} pooling over all {rank}-D positions: output (C, 1...)."
                      if glob else f"Adaptive {kind} pooling to `output` size per spatial dim."))


for _rank in (1, 2, 3):
    for _kind in ("max", "avg"):
        register(make_pool(_kind, _rank))
        register(make_adaptive(_kind, _rank))
        register(make_adaptive(_kind, _rank, glob=True))

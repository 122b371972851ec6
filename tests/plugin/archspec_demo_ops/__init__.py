"""LeCun's scaled tanh, ``alpha * tanh(beta * x)`` (LeCun et al., "Efficient BackProp",
1998: alpha = 1.7159, beta = 2/3), as an archspec op from outside archspec.

The torch module lives in ``modules.py``, so that loading the op (what `archspec check` does)
imports no torch."""

from __future__ import annotations

from typing import Any

from archspec.ops import Attrs, Category, Cost, Ctx, Module, OpDef
from archspec.ops.base import POINTWISE, numel, same_shape


class ScaledTanhAttrs(Attrs):
    alpha: float = 1.7159
    beta: float = 2.0 / 3.0


def _cost(ctx: Ctx) -> Cost:
    n = numel(ctx.out)
    return Cost(flops=7 * n, in_numel=n, out_numel=n)


def _onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    b.node("Mul", [inputs[0], b.const("beta", ctx.attrs.beta)], [b.tmp("scaled")])
    b.node("Tanh", [b.tmp("scaled")], [b.tmp("tanh")])
    b.node("Mul", [b.tmp("tanh"), b.const("alpha", ctx.attrs.alpha)], [output])


SCALED_TANH = OpDef(
    name="scaled_tanh", attrs=ScaledTanhAttrs, infer=same_shape, cost=_cost,
    step=lambda ctx: POINTWISE, category=Category.TANH,
    torch=lambda ctx: Module("archspec_demo_ops.modules.ScaledTanh",
                             kwargs=(("alpha", ctx.attrs.alpha), ("beta", ctx.attrs.beta))),
    onnx=_onnx, positional=("alpha", "beta"),
    doc="alpha * tanh(beta * x) (LeCun 1998). Shape unchanged; FLOPs: 7 per element.")

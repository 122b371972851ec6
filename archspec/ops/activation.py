"""Element-wise activations. Output shape = input shape; FLOPs per element as documented."""

from __future__ import annotations

from typing import Literal

from archspec.ops.base import Attrs, NoAttrs, OpDef, elementwise_cost, register, same_shape


class LeakyAttrs(Attrs):
    slope: float = 0.01


class GeluAttrs(Attrs):
    approximate: Literal["none", "tanh"] = "none"


class SoftmaxAttrs(Attrs):
    dim: int = 0


_ACTIVATIONS: tuple[tuple[str, type[Attrs], tuple[str, ...], int, str], ...] = (
    ("relu", NoAttrs, (), 1, "max(x, 0)."),
    ("leaky_relu", LeakyAttrs, ("slope",), 2, "x if x > 0 else `slope` * x."),
    ("sigmoid", NoAttrs, (), 4, "1 / (1 + exp(-x))."),
    ("tanh", NoAttrs, (), 5, "tanh(x)."),
    ("gelu", GeluAttrs, ("approximate",), 8, "x * Phi(x); `approximate` none|tanh."),
    ("silu", NoAttrs, (), 5, "x * sigmoid(x) (swish)."),
    ("softmax", SoftmaxAttrs, ("dim",), 3,
     "exp(x) / sum exp(x) along `dim` of the per-sample shape (0 = channels/features)."),
)

for _name, _attrs, _pos, _flops, _doc in _ACTIVATIONS:
    register(OpDef(name=_name, attrs=_attrs, infer=same_shape, cost=elementwise_cost(_flops),
                   positional=_pos, category="act",
                   doc=f"{_doc} Shape unchanged; FLOPs: {_flops} per element."))

"""ONNX node types -> archspec ops: one rule per ONNX op type, the reverse of the ``onnx``
rules of the op registry (ops/*.py) for the ops those rules emit one node for.

A rule returns a :class:`Lifted` (op, attributes, weights under the op's state_dict names),
True when the node passes its input through (Identity, Dropout), or None when this use of the
op has no archspec op (asymmetric pads, a transposed Gemm...): a located error then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archspec.importers.torch_ops import _plain


class Node:
    """One ONNX node as a rule reads it: attributes, constant inputs, tensor inputs."""

    def __init__(self, proto: Any, inits: dict[str, Any], alias: dict[str, str],
                 shape: tuple[int, ...] = ()) -> None:
        from onnx import helper

        self.proto = proto
        self.shape = shape  # the per-sample output shape shape inference gives, if any
        self.attrs = {a.name: helper.get_attribute_value(a) for a in proto.attribute}
        self.inits = inits
        self.consts = [inits.get(alias.get(v, v), inits.get(v)) if v else None
                       for v in proto.input]
        self.tensors = [alias.get(v, v) for v, c in zip(proto.input, self.consts)
                        if v and c is None]

    def const(self, i: int) -> Any:
        return self.consts[i] if i < len(self.consts) else None


@dataclass
class Lifted:
    op: str
    attrs: dict[str, Any]
    weights: dict[str, Any] = field(default_factory=dict)


def _pads(node: Node, rank: int) -> int | tuple[int, ...] | None:
    pads = list(node.attrs.get("pads", [0] * 2 * rank))
    if pads[:rank] != pads[rank:] or node.attrs.get("auto_pad", b"NOTSET") not in (
            b"NOTSET", "NOTSET"):
        return None
    return _plain(tuple(pads[:rank]))


def _conv(node: Node) -> Lifted | None:
    w = node.const(1)
    if w is None or len(node.tensors) != 1:
        return None
    rank = w.ndim - 2
    pads = _pads(node, rank)
    if pads is None:
        return None
    weights = {"weight": w}
    if node.const(2) is not None:
        weights["bias"] = node.const(2)
    return Lifted(f"conv{rank}d", {
        "out": int(w.shape[0]), "kernel": _plain(tuple(int(k) for k in w.shape[2:])),
        "stride": _plain(tuple(node.attrs.get("strides", [1] * rank))), "padding": pads,
        "dilation": _plain(tuple(node.attrs.get("dilations", [1] * rank))),
        "groups": int(node.attrs.get("group", 1)), "bias": "bias" in weights}, weights)


def _bn(node: Node) -> Lifted | None:
    import numpy as np

    scale, bias, mean, var = (node.const(i) for i in range(1, 5))
    if any(c is None for c in (scale, bias, mean, var)):
        return None
    return Lifted("batchnorm2d", {"eps": float(f"{node.attrs.get('epsilon', 1e-5):.6g}"),
                                  "momentum": round(1 - node.attrs.get("momentum", 0.9), 6)},
                  {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var,
                   "num_batches_tracked": np.array(0, dtype=np.int64)})


def _pool(op: str) -> Callable[[Node], Lifted | None]:
    def rule(node: Node) -> Lifted | None:
        kernel = tuple(node.attrs["kernel_shape"])
        pads = _pads(node, len(kernel))
        if pads is None:
            return None
        attrs = {"kernel": _plain(kernel),
                 "stride": _plain(tuple(node.attrs.get("strides", [1] * len(kernel)))),
                 "padding": pads, "ceil": bool(node.attrs.get("ceil_mode", 0))}
        if op == "avgpool2d":
            attrs["count_include_pad"] = bool(node.attrs.get("count_include_pad", 0))
        return Lifted(op, attrs)
    return rule


def _gemm(node: Node) -> Lifted | None:
    w = node.const(1)
    if w is None or node.attrs.get("transA", 0) or node.attrs.get("alpha", 1.0) != 1.0 or \
            node.attrs.get("beta", 1.0) != 1.0:
        return None
    w = w if node.attrs.get("transB", 0) else w.T
    weights = {"weight": w}
    if node.const(2) is not None:
        weights["bias"] = node.const(2)
    return Lifted("linear", {"out": int(w.shape[0]), "bias": "bias" in weights}, weights)


def _clip(node: Node) -> Lifted | None:
    low, high = node.const(1), node.const(2)
    if low is not None and high is not None and float(low) == 0.0 and float(high) == 6.0:
        return Lifted("relu6", {})
    return None


def _merge(op: str) -> Callable[[Node], Lifted | None]:
    return lambda node: Lifted(op, {}) if len(node.tensors) == 2 else None


def _simple(op: str, **attrs: Any) -> Callable[[Node], Lifted]:
    return lambda node: Lifted(op, dict(attrs))


def _flatten(node: Node) -> Lifted | None:
    return Lifted("flatten", {}) if node.attrs.get("axis", 1) == 1 else None


def _concat(node: Node) -> Lifted | bool:
    if len(node.tensors) == 1:
        return True
    axis = int(node.attrs["axis"])
    return Lifted("concat", {"dim": axis - 1 if axis > 0 else axis})


def _reshape(node: Node) -> Lifted | None:
    """Reshape to a constant shape that keeps the batch first (0, -1 or 1 at its place)."""
    shape = node.const(1)
    if shape is None or not node.shape or len(node.tensors) != 1 or \
            int(shape.reshape(-1)[0]) not in (0, 1, -1) or node.attrs.get("allowzero", 0):
        return None
    return Lifted("reshape", {"shape": tuple(int(d) for d in node.shape)})


def _transpose(node: Node) -> Lifted | None:
    perm = list(node.attrs.get("perm", []))
    if not perm or perm[0] != 0:
        return None
    return Lifted("permute", {"dims": tuple(d - 1 for d in perm[1:])})


def _matmul(node: Node) -> Lifted | None:
    """Two activations: ``matmul``; an activation times a constant matrix: ``linear``."""
    if len(node.tensors) == 2:
        return Lifted("matmul", {})
    w = node.const(1)
    if w is None or w.ndim != 2:
        return None
    return Lifted("linear", {"out": int(w.shape[1]), "bias": False}, {"weight": w.T})


def _softmax(node: Node) -> Lifted | None:
    axis = int(node.attrs.get("axis", -1))
    return None if axis == 0 else Lifted("softmax", {"dim": axis - 1 if axis > 0 else axis})


def _reduce_mean(node: Node) -> Lifted | None:
    axes = node.attrs.get("axes")
    if axes is None and node.const(1) is not None:
        axes = [int(a) for a in node.const(1).reshape(-1)]
    if not axes or 0 in axes:
        return None
    dims = tuple(a - 1 if a > 0 else a for a in axes)
    return Lifted("mean", {"dims": dims[0] if len(dims) == 1 else dims,
                           "keepdim": bool(node.attrs.get("keepdims", 1))})


RULES: dict[str, Callable[[Node], Any]] = {
    "Conv": _conv, "BatchNormalization": _bn, "Gemm": _gemm, "Clip": _clip,
    "Relu": _simple("relu"), "Sigmoid": _simple("sigmoid"), "Tanh": _simple("tanh"),
    "HardSwish": _simple("hardswish"), "MaxPool": _pool("maxpool2d"),
    "AveragePool": _pool("avgpool2d"), "GlobalAveragePool": _simple("adaptive_avgpool2d"),
    "Flatten": _flatten, "Add": _merge("add"), "Mul": _merge("mul"), "Concat": _concat,
    "Identity": lambda node: True, "Dropout": lambda node: True, "Reshape": _reshape,
    "Transpose": _transpose, "MatMul": _matmul, "Softmax": _softmax, "ReduceMean": _reduce_mean,
    "Sub": _merge("sub"), "Div": _merge("div"),
}

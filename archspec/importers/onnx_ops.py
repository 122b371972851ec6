"""ONNX node types -> archspec ops: one rule per ONNX op type, the reverse of the ``onnx``
rules of the op registry (ops/*.py) for the ops those rules emit one node for.

A rule returns a :class:`Lifted` (op, attributes, weights under the op's state_dict names),
a list of them for a node with several outputs (Split: one ``slice`` each), True when the
node passes its input through (Identity, Dropout), or None when this use of the op has no
archspec op (asymmetric pads, a transposed Gemm...): a located error then. Shape arithmetic
(``Shape``, ``Gather``, ``Concat``, ``Unsqueeze`` of constants) is computed where it is met
(:func:`archspec.importers.onnx_fold.fold`): the input shapes are known, so a Reshape's
target is a constant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archspec.importers.torch_ops import _plain


class Node:
    """One ONNX node as a rule reads it: attributes, constant inputs, tensor inputs, and
    the per-sample shapes shape inference gives (``()`` where it gives none).

    ``sources``: each input's name after aliases (an Identity's or Expand's input for its
    output), which names an initialiser read through them (``class_token``)."""

    def __init__(self, proto: Any, inits: dict[str, Any], alias: dict[str, str],
                 shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        from onnx import helper

        shapes = shapes or {}
        self.proto = proto
        self.shape = shapes.get(proto.output[0], ())
        self.out_shapes = [shapes.get(o, ()) for o in proto.output]
        self.attrs = {a.name: helper.get_attribute_value(a) for a in proto.attribute}
        self.inits = inits
        self.sources = [alias.get(v, v) if v else "" for v in proto.input]
        self.consts = [inits.get(s, inits.get(v)) if v else None
                       for v, s in zip(proto.input, self.sources)]
        self.tensors = [s for v, s, c in zip(proto.input, self.sources, self.consts)
                        if v and c is None]
        self.in_shapes = [shapes.get(v, ()) for v, c in zip(proto.input, self.consts)
                          if v and c is None]

    def const(self, i: int) -> Any:
        return self.consts[i] if i < len(self.consts) else None

    def source(self, i: int) -> str:
        return self.sources[i] if i < len(self.sources) else ""


@dataclass
class Lifted:
    """An archspec op with its attributes and weights, keyed by the op's state_dict names
    (``""``: the layer's own key, for a learned tensor). ``key``: the state_dict key of the
    layer where it is the initialiser's own name (a learned tensor), not the node's path."""

    op: str
    attrs: dict[str, Any]
    weights: dict[str, Any] = field(default_factory=dict)
    key: str | None = None


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


def _scalar(value: Any) -> float | None:
    """A constant of one element as a float, else None."""
    return None if value is None or value.size != 1 else float(value.reshape(-1)[0])


def _one_const(node: Node) -> tuple[Any, str] | None:
    """The constant and its source name of a node reading one tensor and one constant."""
    if len(node.tensors) != 1 or len(node.consts) != 2:
        return None
    i = 0 if node.consts[0] is not None else 1
    return node.consts[i], node.source(i)


def _add(node: Node) -> Lifted | None:
    """Two activations: ``add``; a scalar: ``shift``; an initialiser of one sample's shape
    (stored with a leading 1): ``position_embedding`` at the initialiser's own key."""
    if len(node.tensors) == 2:
        return Lifted("add", {})
    found = _one_const(node)
    if found is None or not node.in_shapes[0]:
        return None
    c, name = found
    if _scalar(c) is not None:
        return Lifted("shift", {"value": _scalar(c)})
    if tuple(c.shape) == (1, *node.in_shapes[0]) and name in node.inits:
        return Lifted("position_embedding", {}, {"": c}, name)
    return None


def _mul(node: Node) -> Lifted | None:
    """Two activations: ``mul``; a scalar: ``scale``; an initialiser of one factor per
    channel, (C, 1, ...): ``layer_scale`` at the initialiser's own key."""
    if len(node.tensors) == 2:
        return Lifted("mul", {})
    found = _one_const(node)
    if found is None or not node.in_shapes[0]:
        return None
    c, name = found
    if _scalar(c) is not None:
        return Lifted("scale", {"factor": _scalar(c)})
    x = node.in_shapes[0]
    if tuple(c.shape) == (x[0], *(1,) * (len(x) - 1)) and name in node.inits:
        return Lifted("layer_scale", {"value": float(c.reshape(-1)[0])}, {"": c}, name)
    return None


def _simple(op: str, **attrs: Any) -> Callable[[Node], Lifted]:
    return lambda node: Lifted(op, dict(attrs))


def _dim(axis: int, rank: int) -> int | None:
    """An ONNX axis of a batched tensor of per-sample ``rank`` as a per-sample dim; None
    for the batch."""
    a = axis % (rank + 1)
    return None if a == 0 else a - 1


def _axes(node: Node, position: int) -> list[int] | None:
    """A node's axes: the ``axes`` attribute (older opsets) or its constant input."""
    axes = node.attrs.get("axes")
    if axes is None and node.const(position) is not None:
        axes = [int(a) for a in node.const(position).reshape(-1)]
    return None if axes is None else list(axes)


def _to_reshape(node: Node) -> Lifted | None:
    """Unsqueeze or Squeeze of an activation away from the batch: ``reshape`` to the shape
    shape inference gives."""
    axes = _axes(node, 1)
    rank = len(node.shape) if node.proto.op_type == "Unsqueeze" else len(node.in_shapes[0])
    if not node.shape and node.proto.op_type == "Unsqueeze" or len(node.tensors) != 1 or \
            not axes or any(_dim(a, rank) is None for a in axes):
        return None
    return Lifted("reshape", {"shape": tuple(int(d) for d in node.shape)})


def _split(node: Node) -> list[Lifted] | None:
    """Split of an activation along a per-sample dim: one ``slice`` per output."""
    x = node.in_shapes[0] if node.in_shapes else ()
    if len(node.tensors) != 1 or not x:
        return None
    d = _dim(int(node.attrs.get("axis", 0)), len(x))
    if d is None:
        return None
    sizes = node.attrs.get("split")
    if sizes is None and node.const(1) is not None:
        sizes = [int(v) for v in node.const(1).reshape(-1)]
    if sizes is None:
        n = len(node.proto.output)
        step = -(-x[d] // n)
        sizes = [min(step, x[d] - i * step) for i in range(n)]
    if sum(sizes) != x[d] or len(sizes) != len(node.proto.output):
        return None
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [Lifted("slice", {"dim": d, "start": a, "end": a + n}) for a, n in
            zip(starts, sizes)]


INT64_MAX = 2**63 - 1


def _slice(node: Node) -> Lifted | None:
    """Slice of an activation along one per-sample dim: ``slice``."""
    starts, ends, axes, steps = (node.const(i) for i in range(1, 5))
    x = node.in_shapes[0] if node.in_shapes else ()
    if len(node.tensors) != 1 or starts is None or ends is None or starts.size != 1 or not x:
        return None
    axis = int(axes.reshape(-1)[0]) if axes is not None else 0
    d = _dim(axis, len(x))
    step = int(steps.reshape(-1)[0]) if steps is not None else 1
    start, end = int(starts.reshape(-1)[0]), int(ends.reshape(-1)[0])
    if d is None or step < 1:
        return None
    return Lifted("slice", {"dim": d, "start": max(start, -x[d]) if start < 0 else start,
                            "end": None if end >= x[d] else end, "step": step})


def _gather(node: Node) -> Lifted | None:
    """Gather of one constant index along a per-sample dim: ``select``."""
    index = node.const(1)
    x = node.in_shapes[0] if node.in_shapes else ()
    if len(node.tensors) != 1 or index is None or index.ndim != 0 or not x:
        return None
    d = _dim(int(node.attrs.get("axis", 0)), len(x))
    return None if d is None else Lifted("select", {"dim": d, "index": int(index)})


def _layernorm(node: Node) -> Lifted | None:
    """LayerNormalization over the last dim with a scale and a bias: ``layernorm``."""
    scale, bias = node.const(1), node.const(2)
    x = node.in_shapes[0] if node.in_shapes else ()
    if len(node.tensors) != 1 or scale is None or bias is None or not x or \
            int(node.attrs.get("axis", -1)) not in (-1, len(x)) or scale.shape != (x[-1],):
        return None
    return Lifted("layernorm", {"eps": float(f"{node.attrs.get('epsilon', 1e-5):.6g}")},
                  {"weight": scale, "bias": bias})


def _gelu(node: Node) -> Lifted | None:
    approximate = node.attrs.get("approximate", b"none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    return Lifted("gelu", {"approximate": approximate}) if approximate in ("none", "tanh") \
        else None


def _hardsigmoid(node: Node) -> Lifted | None:
    """HardSigmoid as torch exports it (alpha 1/6 in float32, beta 0.5): ``hardsigmoid``."""
    import numpy as np

    alpha, beta = node.attrs.get("alpha", 0.2), node.attrs.get("beta", 0.5)
    return Lifted("hardsigmoid", {}) if np.float32(alpha) == np.float32(1 / 6) and \
        beta == 0.5 else None


def _expand(node: Node) -> bool | None:
    """Expand of a constant over the batch only (ViT's class token): the constant itself,
    read where it is used."""
    import numpy as np

    data, shape = node.const(0), node.const(1)
    if data is None or shape is None or not data.ndim or data.shape[0] != 1:
        return None
    try:
        out = np.broadcast_shapes(data.shape, tuple(int(d) for d in shape.reshape(-1)))
    except ValueError:
        return None
    return True if out[1:] == data.shape[1:] else None


def _resize_mode(node: Node, spatial: tuple[int, ...]) -> tuple[str, bool | None] | None:
    """torch's interpolation mode (and align_corners) of a Resize's attributes to output
    sides ``spatial``, the reverse of the upsample op's ONNX rule."""
    def text(name: str, default: str) -> str:
        v = node.attrs.get(name, default)
        return v.decode() if isinstance(v, bytes) else v

    mode, transform = text("mode", "nearest"), text("coordinate_transformation_mode",
                                                    "half_pixel")
    if node.attrs.get("antialias", 0) or node.attrs.get("exclude_outside", 0) or \
            "axes" in node.attrs or text("keep_aspect_ratio_policy", "stretch") != "stretch":
        return None
    if transform == "pytorch_half_pixel" and all(d > 1 for d in spatial):
        transform = "half_pixel"  # the same where no output side is 1
    if mode == "nearest":
        return {("asymmetric", "floor"): ("nearest", None),
                ("half_pixel", "round_prefer_ceil"): ("nearest-exact", None)}.get(
            (transform, text("nearest_mode", "round_prefer_floor")))
    corners = {"half_pixel": False, "align_corners": True}.get(transform)
    if corners is None:
        return None
    if mode == "cubic":
        return ("bicubic", corners) if len(spatial) == 2 and node.attrs.get(
            "cubic_coeff_a", -0.75) == -0.75 else None
    linear = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(len(spatial))
    return None if mode != "linear" or linear is None else (linear, corners)


def _resize(node: Node) -> Lifted | None:
    """Resize of a (C, *spatial) activation to constant sizes or by integer scales (batch
    and channels kept): ``upsample``."""
    x = node.in_shapes[0] if node.in_shapes else ()
    scales, sizes = node.const(2), node.const(3)
    if len(node.tensors) != 1 or len(x) < 2:
        return None
    attrs: dict[str, Any] = {}
    if sizes is not None and sizes.size:
        dims = [int(v) for v in sizes.reshape(-1)]
        if len(dims) != len(x) + 1 or dims[1] != x[0]:
            return None
        spatial = tuple(dims[2:])
        attrs["size"] = _plain(spatial)
    elif scales is not None and scales.size == len(x) + 1:
        factors = [float(v) for v in scales.reshape(-1)]
        if factors[:2] != [1.0, 1.0] or any(f != int(f) or f < 1 for f in factors[2:]):
            return None
        attrs["scale"] = _plain(tuple(int(f) for f in factors[2:]))
        spatial = tuple(n * int(f) for n, f in zip(x[1:], factors[2:]))
    else:
        return None
    found = _resize_mode(node, spatial)
    if found is None:
        return None
    return Lifted("upsample", {**attrs, "mode": found[0], "align_corners": found[1]})


def _flatten(node: Node) -> Lifted | None:
    return Lifted("flatten", {}) if node.attrs.get("axis", 1) == 1 else None


def _concat(node: Node) -> Lifted | bool | None:
    """Activations: ``concat``; an initialiser of one token, (1, 1, D), before (T, D)
    tokens: ``class_token`` at the initialiser's own key."""
    axis = int(node.attrs["axis"])
    if len(node.tensors) == len(node.consts) == 1:
        return True  # a concat of one tensor is that tensor
    if len(node.tensors) == len(node.consts):
        return Lifted("concat", {"dim": axis - 1 if axis > 0 else axis})
    token, name = node.const(0), node.source(0)
    x = node.in_shapes[0] if node.in_shapes else ()
    if len(node.consts) == 2 and len(node.tensors) == 1 and token is not None and \
            len(x) == 2 and token.shape == (1, 1, x[1]) and axis in (1, -2) and \
            name in node.inits:
        return Lifted("class_token", {}, {"": token}, name)
    return None


def _reshape(node: Node) -> Lifted | None:
    """Reshape to a constant shape (folded from shape arithmetic where the file computes
    it) that keeps the batch first (0, -1 or 1 at its place)."""
    shape = node.const(1)
    if shape is None or len(node.tensors) != 1 or node.attrs.get("allowzero", 0) or \
            int(shape.reshape(-1)[0]) not in (0, 1, -1):
        return None
    out = node.shape or _target(node.in_shapes[0], [int(d) for d in shape.reshape(-1)])
    return None if out is None else Lifted("reshape", {"shape": tuple(int(d) for d in out)})


def _target(x: tuple[int, ...], shape: list[int]) -> tuple[int, ...] | None:
    """The per-sample shape a Reshape to ``shape`` (batch first) makes of a per-sample
    ``x``: 0 copies the dim, one -1 takes what is left."""
    import math

    dims = [x[i - 1] if d == 0 and 0 < i <= len(x) else d for i, d in enumerate(shape)][1:]
    total = math.prod(x) if x else 0
    known = math.prod(d for d in dims if d != -1)
    if not x or dims.count(-1) > 1 or known <= 0 or total % known:
        return None
    out = tuple(total // known if d == -1 else d for d in dims)
    return out if math.prod(out) == total else None


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


def _einsum(node: Node) -> Lifted | None:
    """Einsum of activations whose terms all lead with one batch letter, found nowhere else:
    ``einsum`` of the rest (``bij,bjk->bik``: ``ij,jk->ik``)."""
    from archspec.importers.torch_ops import batchless_equation

    equation = node.attrs.get("equation", b"")
    equation = equation.decode() if isinstance(equation, bytes) else equation
    found = batchless_equation(equation, len(node.tensors))
    if found is None or len(node.tensors) != len(node.consts):
        return None
    return Lifted("einsum", {"equation": found})


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
    "HardSwish": _simple("hardswish"), "HardSigmoid": _hardsigmoid, "Gelu": _gelu,
    "MaxPool": _pool("maxpool2d"), "AveragePool": _pool("avgpool2d"),
    "GlobalAveragePool": _simple("adaptive_avgpool2d"), "Flatten": _flatten, "Add": _add,
    "Mul": _mul, "Concat": _concat, "Identity": lambda node: True,
    "Dropout": lambda node: True, "Reshape": _reshape, "Transpose": _transpose,
    "MatMul": _matmul, "Softmax": _softmax, "ReduceMean": _reduce_mean, "Sub": _merge("sub"),
    "Div": _merge("div"), "Unsqueeze": _to_reshape, "Squeeze": _to_reshape, "Split": _split,
    "Slice": _slice, "Gather": _gather, "LayerNormalization": _layernorm, "Expand": _expand,
    "Resize": _resize, "Einsum": _einsum,
}

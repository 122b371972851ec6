"""ONNX nodes computed at import time: shape arithmetic (``Shape`` of a value whose shape is
known, ``Gather``/``Concat``/``Unsqueeze`` of constants) and ops on constants alone (a
transposed weight), so that what feeds a Reshape is a constant; and the value of a
``Constant`` node. Outputs are bounded (:func:`fold`'s ``limit``) so that a hostile file
cannot make a large one.
"""

from __future__ import annotations

from typing import Any

#: ops evaluated when every input is a constant (shape arithmetic, a transposed weight)
FOLDABLE = frozenset({
    "Gather", "Concat", "Unsqueeze", "Squeeze", "Slice", "Cast", "Mul", "Div", "Add", "Sub",
    "Floor", "Ceil", "Neg", "Abs", "Equal", "Less", "Greater", "Not", "Where", "Reshape",
    "Identity", "Sqrt", "Max", "Min", "Transpose", "ReduceProd", "Mod", "Flatten",
    "ConstantOfShape",
})
#: of those, the ones whose output may be larger than their inputs (broadcasting, Gather,
#: ConstantOfShape)
_GROWING = frozenset({"Gather", "Mul", "Div", "Add", "Sub", "Equal", "Less", "Greater",
                      "Where", "Max", "Min", "Mod", "ConstantOfShape"})


def _fold_size(proto: Any, consts: list[Any]) -> int | None:
    """The element count of a growing op's output on ``consts``, None when it fails."""
    import math

    import numpy as np

    arrays = [c for c in consts if c is not None]
    if proto.op_type not in ("Gather", "ConstantOfShape"):
        try:
            return math.prod(np.broadcast_shapes(*(a.shape for a in arrays)))
        except ValueError:
            return None
    if proto.op_type == "ConstantOfShape":
        dims = [int(d) for d in arrays[0].reshape(-1)]
        return None if any(d < 0 for d in dims) else math.prod(dims)
    data, index = arrays[0], arrays[1]
    axis = next((a.i for a in proto.attribute if a.name == "axis"), 0)
    if not data.ndim or not -data.ndim <= axis < data.ndim or not data.shape[axis]:
        return None
    return data.size // data.shape[axis] * index.size


def constant_value(proto: Any) -> Any:
    """The value of a Constant node as an array, or None for a kind it cannot hold here
    (a sparse tensor, strings)."""
    import numpy as np
    from onnx import helper, numpy_helper

    if len(proto.attribute) != 1:
        return None
    a = proto.attribute[0]
    v = helper.get_attribute_value(a)
    if a.name == "value":
        return numpy_helper.to_array(v)
    kinds = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
             "value_ints": np.int64}
    return np.array(v, dtype=kinds[a.name]) if a.name in kinds else None


def fold(proto: Any, consts: list[Any], shapes: dict[str, tuple[int, ...]], opset: int,
         limit: int) -> list[Any] | None:
    """The outputs of a node computed now, or None when it reads an activation: ``Shape``
    of a value whose per-sample shape is known (in ``shapes``; the batch as 1: a batch taken
    from a shape only keeps its place), or a :data:`FOLDABLE` op on constants, run by onnx's
    reference evaluator, where its output is no larger than its inputs together or than
    ``limit`` elements (so a hostile file cannot make a large one)."""
    import numpy as np

    if proto.op_type == "Shape":
        shape = shapes.get(proto.input[0])
        if shape is None or any(d <= 0 for d in shape):
            return None
        dims = [1, *shape]
        attrs = {a.name: a.i for a in proto.attribute}
        return [np.array(dims[attrs.get("start", 0):attrs.get("end")], np.int64)]
    if proto.op_type not in FOLDABLE or proto.domain not in ("", "ai.onnx") or any(
            v and c is None for v, c in zip(proto.input, consts)):
        return None
    if proto.op_type in _GROWING:
        size = _fold_size(proto, consts)
        inputs = 0 if proto.op_type == "ConstantOfShape" else sum(
            c.size for c in consts if c is not None)
        if size is None or size > max(limit, inputs):
            return None
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    inits = [numpy_helper.from_array(np.asarray(c), v)
             for v, c in zip(proto.input, consts) if v]
    outputs = [helper.make_tensor_value_info(o, 0, None) for o in proto.output]
    graph = helper.make_graph([proto], "fold", [], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, {})]
    except Exception:  # a node onnx cannot compute (bad attributes, an index out of range)
        return None

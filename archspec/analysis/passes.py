"""Pure analysis passes: ``(graph, ...) -> {node id: record}``. Nothing is written to the graph.

All counts are per sample unless a function takes ``batch``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

from archspec.analysis.conventions import CONVENTIONS
from archspec.lang.network import Graph, OpNode
from archspec.lang.plugins import PLUGINS
from archspec.ops import REGISTRY, Cost, Ctx, Step
from archspec.ops.base import numel

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}


def costs(graph: Graph) -> dict[str, Cost]:
    """Per-sample :class:`Cost` of every node, from its op's registry entry (the one the
    expander computed and kept on the node, when it did)."""
    return {n.id: n.cost if n.cost is not None else
            REGISTRY[n.op].cost(Ctx(n.in_shapes, n.shape, n.attrs)) for n in graph}


def batches(graph: Graph, batch: int) -> dict[str, int]:
    """How many times each node's per-sample work runs in a forward at ``batch``: the batch,
    or 1 for a node that is the same for every sample (:meth:`Graph.constants`: a parameter,
    a buffer, what is computed from them alone)."""
    constants = graph.constants()
    return {n.id: 1 if n.id in constants else batch for n in graph}


def convention_macs(graph: Graph, node_costs: dict[str, Cost], convention: str,
                    batch: int = 1, times: dict[str, int] | None = None) -> dict[str, int]:
    """MACs of every node at ``batch``, counted the way ``convention`` counts them: the
    per-sample count times the node's :func:`batches` (``times``, when already known), plus
    the op's per-forward work (:attr:`Cost.once`)."""
    count = CONVENTIONS[convention].count
    times = batches(graph, batch) if times is None else times
    out = {}
    for n in graph:
        cost = node_costs[n.id]
        category = REGISTRY[n.op].category
        out[n.id] = count(category, cost) * times[n.id] + (
            count(category, cost.once) if cost.once is not None else 0)
    return out


class Field(NamedTuple):
    """Receptive field (input pixels seen along one spatial axis) and cumulative stride (input
    pixels between neighbouring outputs; a fraction after upsampling).

    ``None`` values mean "global": the layer has pooled or flattened the spatial dims away.
    """

    size: Fraction | int | None
    stride: Fraction | int | None


_GLOBAL = Field(None, None)
_POINT = Field(1, 1)


def receptive_fields(graph: Graph) -> dict[str, Field]:
    """Receptive field and cumulative stride of every node, along the first spatial axis, from
    each op's ``step`` rule (the field grows by ``extra`` input jumps; the jump scales). Exact:
    ints while every step is whole, fractions after upsampling."""
    out: dict[str, Field] = dict.fromkeys(graph.inputs, _POINT)
    steps: dict[tuple[object, ...], tuple[object, Step]] = {}
    for n in graph:
        step = _step(n, steps)
        ins = [out[i] for i in n.inputs] or [_POINT]
        if step.collapse or len(n.shape) < 2 or any(f.size is None for f in ins):
            out[n.id] = _GLOBAL
        elif len(ins) == 1 and step.extra == 0 and step.stride == 1:
            out[n.id] = ins[0]  # a point-wise step: the field of its input
        else:
            size, jump = ins[0] if len(ins) == 1 else (max(f.size for f in ins),
                                                      max(f.stride for f in ins))
            out[n.id] = Field(size + step.extra * jump, jump * step.stride)
    return out


def _step(n: OpNode, steps: dict[tuple[object, ...], tuple[object, Step]]) -> Step:
    """``n``'s :class:`Step`; a built-in op's step rule is a pure function of the shapes and
    the attributes, so ``steps`` keeps it for nodes with the same attributes instance (the
    layers of a repeated block share theirs) and shapes."""
    key = (n.op, id(n.attrs), n.in_shapes, n.shape)
    kept = steps.get(key)
    if kept is not None and kept[0] is n.attrs:
        return kept[1]
    step = REGISTRY[n.op].step(Ctx(n.in_shapes, n.shape, n.attrs))
    if n.op not in PLUGINS:
        steps[key] = (n.attrs, step)
    return step


def activation_bytes(graph: Graph, batch: int, dtype: str,
                     times: dict[str, int] | None = None) -> dict[str, int]:
    """Bytes of every node's output tensor at ``batch`` in ``dtype`` (``times``: the node's
    :func:`batches`, when already known)."""
    width = DTYPE_BYTES[dtype]
    times = batches(graph, batch) if times is None else times
    return {n.id: numel(n.shape) * times[n.id] * width for n in graph}


def scratch_bytes(graph: Graph, node_costs: dict[str, Cost], batch: int,
                  dtype: str, times: dict[str, int] | None = None) -> dict[str, int]:
    """Bytes of the intermediate tensors each node holds while it runs (attention scores:
    batch x heads x queries x keys), at ``batch`` in ``dtype`` (``times``: as above)."""
    width = DTYPE_BYTES[dtype]
    times = batches(graph, batch) if times is None else times
    return {n.id: node_costs[n.id].scratch * times[n.id] * width for n in graph}


def peak_bytes(graph: Graph, sizes: dict[str, int], input_bytes: dict[str, int],
               scratch: dict[str, int] | None = None, skip: frozenset[str] = frozenset()) -> int:
    """Peak bytes of live tensors in an inference pass that frees each output after its last
    reader (graph inputs held throughout), in the graph's topological order; a node's
    ``scratch`` bytes are live while it runs. The nodes in ``skip`` do not run (the
    training-only ones, :meth:`Graph.train_only`); the eval outputs are held to the end."""
    last_use: dict[str, int] = {}
    nodes = {k: n for k, n in graph.nodes.items() if k not in skip} if skip else graph.nodes
    for i, node in enumerate(nodes.values()):
        for src in node.inputs:
            last_use[src] = i
    outputs = set(graph.eval_outputs().values())
    held = scratch or {}
    live = sum(input_bytes.values())
    peak = live
    for i, (node_id, node) in enumerate(nodes.items()):
        live += sizes[node_id]
        peak = max(peak, live + held.get(node_id, 0))
        for src in node.inputs if len(node.inputs) < 2 else set(node.inputs):
            if last_use.get(src) == i and src in nodes and src not in outputs:
                live -= sizes[src]
        if node_id not in last_use and node_id not in outputs:
            live -= sizes[node_id]
    return peak

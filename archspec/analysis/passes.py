"""Pure analysis passes: ``(graph, ...) -> {node id: record}``. Nothing is written to the graph.

All counts are per sample unless a function takes ``batch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from archspec.analysis.conventions import CONVENTIONS
from archspec.lang.network import Graph
from archspec.ops import REGISTRY, Cost, Ctx
from archspec.ops.base import numel

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}


def costs(graph: Graph) -> dict[str, Cost]:
    """Per-sample :class:`Cost` of every node, from its op's registry entry."""
    return {n.id: REGISTRY[n.op].cost(Ctx(n.in_shapes, n.shape, n.attrs)) for n in graph}


def batches(graph: Graph, batch: int) -> dict[str, int]:
    """How many times each node's per-sample work runs in a forward at ``batch``: the batch,
    or 1 for a node that is the same for every sample (:meth:`Graph.constants`: a parameter,
    a buffer, what is computed from them alone)."""
    constants = graph.constants()
    return {n.id: 1 if n.id in constants else batch for n in graph}


def convention_macs(graph: Graph, node_costs: dict[str, Cost], convention: str,
                    batch: int = 1) -> dict[str, int]:
    """MACs of every node at ``batch``, counted the way ``convention`` counts them: the
    per-sample count times the node's :func:`batches`, plus the op's per-forward work
    (:attr:`Cost.once`)."""
    counting = CONVENTIONS[convention]
    times = batches(graph, batch)
    out = {}
    for n in graph:
        cost = node_costs[n.id]
        once = cost.once
        out[n.id] = counting.count(REGISTRY[n.op].category, cost) * times[n.id] + (
            counting.count(REGISTRY[n.op].category, once) if once is not None else 0)
    return out


@dataclass(frozen=True)
class Field:
    """Receptive field (input pixels seen along one spatial axis) and cumulative stride (input
    pixels between neighbouring outputs; a fraction after upsampling).

    ``None`` values mean "global": the layer has pooled or flattened the spatial dims away.
    """

    size: Fraction | None
    stride: Fraction | None


def receptive_fields(graph: Graph) -> dict[str, Field]:
    """Receptive field and cumulative stride of every node, along the first spatial axis, from
    each op's ``step`` rule (the field grows by ``extra`` input jumps; the jump scales)."""
    out: dict[str, Field] = {name: Field(Fraction(1), Fraction(1)) for name in graph.inputs}
    for n in graph:
        ins = [out[i] for i in n.inputs] or [Field(Fraction(1), Fraction(1))]
        step = REGISTRY[n.op].step(Ctx(n.in_shapes, n.shape, n.attrs))
        if any(f.size is None for f in ins) or step.collapse or len(n.shape) < 2:
            out[n.id] = Field(None, None)
            continue
        size = max(f.size for f in ins)
        jump = max(f.stride for f in ins)
        out[n.id] = Field(size + step.extra * jump, jump * step.stride)
    return out


def activation_bytes(graph: Graph, batch: int, dtype: str) -> dict[str, int]:
    """Bytes of every node's output tensor at ``batch`` in ``dtype``."""
    width = DTYPE_BYTES[dtype]
    times = batches(graph, batch)
    return {n.id: numel(n.shape) * times[n.id] * width for n in graph}


def scratch_bytes(graph: Graph, node_costs: dict[str, Cost], batch: int,
                  dtype: str) -> dict[str, int]:
    """Bytes of the intermediate tensors each node holds while it runs (attention scores:
    batch x heads x queries x keys), at ``batch`` in ``dtype``."""
    width = DTYPE_BYTES[dtype]
    times = batches(graph, batch)
    return {n.id: node_costs[n.id].scratch * times[n.id] * width for n in graph}


def peak_bytes(graph: Graph, sizes: dict[str, int], input_bytes: dict[str, int],
               scratch: dict[str, int] | None = None) -> int:
    """Peak bytes of live tensors in an inference pass that frees each output after its last
    reader (graph inputs held throughout), in the graph's topological order; a node's
    ``scratch`` bytes are live while it runs."""
    last_use: dict[str, int] = {}
    order = list(graph.nodes)
    for i, node_id in enumerate(order):
        for src in graph.nodes[node_id].inputs:
            last_use[src] = i
    outputs = set(graph.outputs.values())
    live = sum(input_bytes.values())
    peak = live
    for i, node_id in enumerate(order):
        live += sizes[node_id]
        peak = max(peak, live + (scratch or {}).get(node_id, 0))
        for src in set(graph.nodes[node_id].inputs):
            if last_use.get(src) == i and src in graph.nodes and src not in outputs:
                live -= sizes[src]
        if node_id not in last_use and node_id not in outputs:
            live -= sizes[node_id]
    return peak

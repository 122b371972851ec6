"""The expanded network: a flat DAG of op nodes with dotted names, in topological order."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from archspec.lang.source import Span
from archspec.lang.values import show
from archspec.ops.base import Attrs, Cost, Shape, fmt_shape

if TYPE_CHECKING:
    import networkx as nx

    from archspec.lang.diagnostics import Diagnostic


@functools.lru_cache(maxsize=4096)
def valid_label(text: str) -> bool:
    """Whether ``text`` may name a layer or scope (one part of a dotted path): not empty, no
    dot, printable, no quote or backslash (generated code quotes names), and unchanged by NFKC
    (Python would read ``ﬁ`` as ``fi``)."""
    import unicodedata

    return (text != "" and "." not in text and text.isprintable() and '"' not in text
            and "\\" not in text and unicodedata.normalize("NFKC", text) == text)


@dataclass(frozen=True)
class OpNode:
    """One layer instance. ``id`` is its dotted path (``layer2.0.conv1``), unique in the graph;
    ``inputs`` are ids of producer nodes or graph-input names; shapes are per sample.
    ``cost`` is the op's per-sample :class:`Cost` of this node when the expander computed it
    (None: the analysis computes it from the registry); it never compares."""

    id: str
    op: str
    attrs: Attrs
    inputs: tuple[str, ...]
    in_shapes: tuple[Shape, ...]
    shape: Shape
    span: Span
    synthetic: bool = False
    cost: Cost | None = field(default=None, compare=False, repr=False)

    def renamed(self, node_id: str, inputs: tuple[str, ...]) -> OpNode:
        """This layer at another path ``node_id``, reading ``inputs`` (a replayed block call):
        every other field shared, set at once rather than one ``object.__setattr__`` each."""
        node = object.__new__(OpNode)
        node.__dict__.update(self.__dict__, id=node_id, inputs=inputs)
        return node


@dataclass(frozen=True)
class Scope:
    """A named sub-network: a block call (``kind`` = block name, ``args`` its bound
    parameters) or a labelled group (``kind`` = "group")."""

    path: str
    kind: str
    span: Span
    output: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """Result of expansion. ``nodes`` is in creation order, which is a topological order."""

    name: str
    inputs: dict[str, Shape]
    nodes: dict[str, OpNode] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    train_outputs: set[str] = field(default_factory=set)
    """The names in ``outputs`` returned in training mode only (``output logits, train aux``)."""
    scopes: dict[str, Scope] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    block_inits: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)
    """The ``init`` rules of block calls, in the order the calls were completed (inner ones
    first): (the call's scope path, the rule, the call's environment)."""

    def __iter__(self) -> Iterator[OpNode]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def shape_of(self, ref: str) -> Shape:
        """Per-sample shape of a node id or a graph-input name."""
        return self.nodes[ref].shape if ref in self.nodes else self.inputs[ref]

    def constants(self) -> set[str]:
        """The nodes whose output is the same for every sample: ops without inputs
        (``parameter``, ``buffer``) and what is computed from them alone. The backends hold
        them with a batch dim of 1; the analysis counts them once per forward."""
        out: set[str] = set()
        for node in self.nodes.values():
            if out.issuperset(node.inputs):
                out.add(node.id)
        return out

    def eval_outputs(self) -> dict[str, str]:
        """The outputs of the eval forward: ``outputs`` without the training-only ones."""
        return {k: v for k, v in self.outputs.items() if k not in self.train_outputs}

    def train_only(self) -> set[str]:
        """The nodes that only training-only outputs read, directly or through other nodes:
        the eval forward does not run them (torchvision's auxiliary heads). A node that no
        output reads is not one of them."""
        if not self.train_outputs:
            return set()
        train = _upstream(self, [self.outputs[k] for k in self.train_outputs])
        return train - _upstream(self, self.eval_outputs().values())

    def consumers(self) -> dict[str, list[str]]:
        """Map every value (node id or input) to the ids of the nodes that read it."""
        out: dict[str, list[str]] = {k: [] for k in (*self.inputs, *self.nodes)}
        for node in self.nodes.values():
            for src in node.inputs:
                out[src].append(node.id)
        return out

    def to_networkx(self) -> nx.DiGraph:
        """A networkx view: nodes carry ``op`` and ``shape``; edges go producer -> consumer."""
        import networkx as nx

        g = nx.DiGraph(name=self.name)
        for name, shape in self.inputs.items():
            g.add_node(name, op="input", shape=shape)
        for node in self.nodes.values():
            g.add_node(node.id, op=node.op, shape=node.shape)
            g.add_edges_from((src, node.id) for src in node.inputs)
        return g


def _upstream(graph: Graph, values: Iterable[str]) -> set[str]:
    """The nodes among ``values`` and every node they are computed from."""
    seen: set[str] = set()
    todo = [v for v in values if v in graph.nodes]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(i for i in graph.nodes[node].inputs if i in graph.nodes)
    return seen


def graph_text(graph: Graph) -> str:
    """One line per op of an expanded graph: ``name = op(attrs)(inputs)  # shape``."""
    lines = [f"# {graph.name}: {len(graph)} ops"]
    lines += [f"input {k}: {fmt_shape(v)}" for k, v in graph.inputs.items()]
    for n in graph:
        attrs = ", ".join(f"{k}={show(v)}" for k, v in n.attrs.model_dump().items()
                          if v != type(n.attrs).model_fields[k].default)
        lines.append(f"{n.id} = {n.op}({attrs})({', '.join(n.inputs)})  # {fmt_shape(n.shape)}")
    lines.append("output " + ", ".join(("train " if k in graph.train_outputs else "") + f"{k}={v}"
                                       for k, v in graph.outputs.items()))
    return "\n".join(lines)

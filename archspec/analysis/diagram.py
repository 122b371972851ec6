"""`archspec graph`: the expanded network as a Graphviz DOT or Mermaid diagram.

Layers deeper than ``depth`` fold into their enclosing block, so a ResNet reads as its stages.
"""

from __future__ import annotations

import networkx as nx

from archspec.graph import Graph
from archspec.ops.base import fmt_shape


def folded(graph: Graph, depth: int | None) -> nx.DiGraph:
    """The graph with every node renamed to its first ``depth`` path parts (blocks fold into
    one node, as `check --depth` does); nodes carry ``label`` text, edges the tensor ``shape``
    they carry."""
    def key(node_id: str) -> str:
        if node_id in graph.inputs or depth is None:
            return node_id
        return ".".join(node_id.split(".")[:depth])

    g = nx.DiGraph()
    for name, shape in graph.inputs.items():
        g.add_node(name, label=f"{name}\\ninput {fmt_shape(shape)}")
    for node in graph:
        k = key(node.id)
        scope = graph.scopes.get(k)
        kind = scope.kind if scope is not None and k != node.id else node.op
        g.add_node(k, label=f"{k}\\n{kind} {fmt_shape(graph.shape_of(_output_of(graph, k)))}")
        for src in node.inputs:
            if key(src) != k:
                g.add_edge(key(src), k, shape=fmt_shape(graph.shape_of(src)))
    return g


def _output_of(graph: Graph, key: str) -> str:
    return graph.scopes[key].output if key in graph.scopes else key


def dot(graph: Graph, depth: int | None) -> str:
    """Graphviz DOT text (render with `dot -Tsvg`)."""
    g = folded(graph, depth)
    lines = [f'digraph "{graph.name}" {{', "  rankdir=TB;", '  node [shape=box, fontsize=10];']
    lines += [f'  "{n}" [label="{d["label"]}"];' for n, d in g.nodes(data=True)]
    lines += [f'  "{a}" -> "{b}" [label="{d["shape"]}", fontsize=8];'
              for a, b, d in g.edges(data=True)]
    return "\n".join([*lines, "}"])


def mermaid(graph: Graph, depth: int | None) -> str:
    """Mermaid flowchart text (renders in GitHub Markdown)."""
    g = folded(graph, depth)
    ids = {n: f"n{i}" for i, n in enumerate(g.nodes)}
    lines = ["flowchart TD"]
    lines += [f'  {ids[n]}["{d["label"].replace(chr(92) + "n", "<br/>")}"]'
              for n, d in g.nodes(data=True)]
    lines += [f"  {ids[a]} -->|{d['shape']}| {ids[b]}" for a, b, d in g.edges(data=True)]
    return "\n".join(lines)

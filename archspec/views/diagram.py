"""`archspec graph`: the expanded network as a Graphviz DOT or Mermaid diagram.

Layers deeper than ``depth`` fold into their enclosing block, so a ResNet reads as its stages;
in DOT every block still open at that depth is a cluster around its contents.
Names from the spec (free text in YAML and label holes) reach the output only through one
escape per target, :func:`dot_string` and :func:`mermaid_text`; nodes are numbered ``n0``,
``n1``... so that no name is ever written as syntax.
"""

from __future__ import annotations

import string
from collections.abc import Iterator

import networkx as nx

from archspec.analysis.passes import costs
from archspec.lang.network import Graph
from archspec.ops.base import fmt_shape


def folded(graph: Graph, depth: int | None) -> nx.DiGraph:
    """The graph with every node renamed to its first ``depth`` path parts (blocks fold into
    one node, as `check --depth` does); nodes carry ``lines`` of label text (name, kind and
    per-sample output shape, then ``params N`` when it has parameters) and ``params`` (elements,
    summed over a folded block), edges the tensor ``shape`` they carry."""
    def key(node_id: str) -> str:
        if node_id in graph.inputs or depth is None:
            return node_id
        return ".".join(node_id.split(".")[:depth])

    node_costs = costs(graph)
    params: dict[str, int] = {}
    g = nx.DiGraph()
    for name, shape in graph.inputs.items():
        g.add_node(name, lines=(name, f"input {fmt_shape(shape)}"), params=0)
    for node in graph:
        k = key(node.id)
        params[k] = params.get(k, 0) + node_costs[node.id].params
        scope = graph.scopes.get(k)
        kind = scope.kind if scope is not None and k != node.id else node.op
        g.add_node(k, lines=(k, f"{kind} {fmt_shape(graph.shape_of(_output_of(graph, k)))}"))
        for src in node.inputs:
            if key(src) != k:
                g.add_edge(key(src), k, shape=fmt_shape(graph.shape_of(src)))
    for k, count in params.items():
        g.nodes[k]["params"] = count
        if count:
            g.nodes[k]["lines"] = (*g.nodes[k]["lines"], f"params {count:,}")
    return g


def _output_of(graph: Graph, key: str) -> str:
    return graph.scopes[key].output if key in graph.scopes else key


def dot_string(text: str) -> str:
    """``text`` as a DOT quoted string, the one escape for DOT: a quote or a backslash
    escaped (so no escString such as ``\\N`` forms either), a line break as DOT's ``\\n``,
    any other unprintable character as visible ``\\xNN`` text."""
    def char(c: str) -> str:
        if c in '"\\':
            return "\\" + c
        if c == "\n":
            return "\\n"
        return c if c.isprintable() else "\\" + c.encode("unicode_escape").decode("ascii")

    return '"' + "".join(map(char, text)) + '"'


_MERMAID_PLAIN = frozenset(string.ascii_letters + string.digits + " _-.,:/()[]+*=")


def mermaid_text(text: str) -> str:
    """``text`` for a Mermaid label, the one escape for Mermaid: every character but ASCII
    letters, digits and ``_-.,:/()[]+*=`` as an entity code (``#34;``), so no quote, bar,
    ``<`` (HTML), ``#`` or ``%`` (directives) and no line break is written raw."""
    return "".join(c if c in _MERMAID_PLAIN else f"#{ord(c)};" for c in text)


def enclosing(graph: Graph, node: str) -> str | None:
    """The innermost block (scope path) that strictly encloses ``node`` (a folded node id or a
    scope path), or None at the top level."""
    parts = node.split(".")
    for i in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in graph.scopes:
            return prefix
    return None


def clusters(graph: Graph, nodes: list[str]) -> tuple[dict[str | None, list[str]],
                                                       dict[str | None, list[str]]]:
    """The block tree around the folded ``nodes``: ``(members, children)``, where
    ``members[c]`` are the nodes directly inside cluster ``c`` (None: the top level) and
    ``children[c]`` the clusters directly inside it, in first-seen order."""
    members: dict[str | None, list[str]] = {}
    children: dict[str | None, list[str]] = {}
    seen: set[str] = set()
    for n in nodes:
        cluster = None if n in graph.inputs else enclosing(graph, n)
        members.setdefault(cluster, []).append(n)
        while cluster is not None and cluster not in seen:
            seen.add(cluster)
            parent = enclosing(graph, cluster)
            children.setdefault(parent, []).append(cluster)
            cluster = parent
    return members, children


def dot(graph: Graph, depth: int | None) -> str:
    """Graphviz DOT text (render with `dot -Tsvg`): one node per folded layer or block,
    labelled with its name, kind, per-sample output shape and params, and one cluster per
    block that is open at ``depth``, nested as the blocks are."""
    g = folded(graph, depth)
    ids = {n: f"n{i}" for i, n in enumerate(g.nodes)}
    members, children = clusters(graph, list(g.nodes))
    numbers = {c: i for i, c in enumerate(c for cs in children.values() for c in cs)}

    def body(cluster: str | None, pad: str) -> Iterator[str]:
        for n in members.get(cluster, []):
            yield f'{pad}{ids[n]} [label={dot_string(chr(10).join(g.nodes[n]["lines"]))}];'
        for sub in children.get(cluster, []):
            label = f"{sub} ({graph.scopes[sub].kind})"
            yield f"{pad}subgraph cluster_{numbers[sub]} {{"
            yield f"{pad}  label={dot_string(label)}; style=rounded; color=gray60;"
            yield from body(sub, pad + "  ")
            yield f"{pad}}}"

    lines = [f"digraph {dot_string(graph.name)} {{", "  rankdir=TB;",
             "  node [shape=box, fontsize=10];", *body(None, "  ")]
    lines += [f"  {ids[a]} -> {ids[b]} [label={dot_string(d['shape'])}, fontsize=8];"
              for a, b, d in g.edges(data=True)]
    return "\n".join([*lines, "}"])


def mermaid(graph: Graph, depth: int | None) -> str:
    """Mermaid flowchart text (renders in GitHub Markdown)."""
    g = folded(graph, depth)
    ids = {n: f"n{i}" for i, n in enumerate(g.nodes)}
    lines = ["flowchart TD"]
    lines += [f'  {ids[n]}["{"<br/>".join(map(mermaid_text, d["lines"]))}"]'
              for n, d in g.nodes(data=True)]
    lines += [f"  {ids[a]} -->|{mermaid_text(d['shape'])}| {ids[b]}"
              for a, b, d in g.edges(data=True)]
    return "\n".join(lines)

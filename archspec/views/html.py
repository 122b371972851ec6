"""`archspec graph -o net.html`: one self-contained, offline HTML page of the network.

The page holds its data as JSON and draws the graph top to bottom with inline JavaScript (no
network access at view time; a Content-Security-Policy forbids any). Blocks fold and unfold on
a click and to a chosen depth (depth 1, every block folded, unless asked otherwise); every node
shows its output shape, params and MACs, every edge the shape of the tensor it carries, a
tooltip adds FLOPs, memory and the source line, a search box highlights layers by name or op,
and the header shows the totals. Text too long for its box ends in an ellipsis and keeps the
whole text as a tooltip. Names from the spec reach the page only as JSON text read by
``textContent``/``setAttribute``, never as markup.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

from archspec.analysis.report import Analysis, Row
from archspec.lang.network import Graph
from archspec.ops.base import fmt_shape
from archspec.views.diagram import enclosing
from archspec.views.table import human, mb

# Characters that could end the <script> element or confuse an HTML or JavaScript parser,
# written as JSON escapes inside the embedded data.
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                   "\u2029": "\\u2029"}


def _entry(row: Row, parent: str | None) -> dict[str, Any]:
    """One node or block of the page: per-sample shape, counts (batch 1) and their texts."""
    return {"id": row.name, "op": row.op, "parent": parent, "depth": row.depth,
            "shape": fmt_shape(tuple(row.output_shape[1:])), "params": row.params,
            "macs": row.macs, "flops": row.flops, "params_text": human(row.params),
            "macs_text": human(row.macs, " "), "memory_text": mb(row.activation_bytes),
            "line": row.line}


def depth_range(scopes: list[dict[str, Any]], depth: int | None) -> tuple[int, int]:
    """The page's initial depth and its deepest useful one: ``depth`` (None: 1, every block
    folded) held between 1 and the depth that opens every block (one more than the deepest
    block's level, so that no sentinel number reaches the depth box)."""
    deepest = max((s["depth"] for s in scopes), default=-1) + 2
    return min(max(1 if depth is None else depth, 1), deepest), deepest


def page_data(graph: Graph, report: Analysis, depth: int | None) -> dict[str, Any]:
    """What the page draws: inputs and layers in topological order, the block tree, the edges
    (producer, consumer, the per-sample shape it carries), the totals as text, the initial
    ``depth`` (None: 1) and ``max_depth``, the depth that opens every block."""
    inputs = [{"id": name, "op": "input", "parent": None, "depth": 0,
               "shape": fmt_shape(shape), "params": 0, "macs": 0, "flops": 0,
               "params_text": "0", "macs_text": "0", "memory_text": "-", "line": 0}
              for name, shape in graph.inputs.items()]
    layers = [_entry(r, enclosing(graph, r.name)) for r in report.layers]
    scopes = [_entry(r, enclosing(graph, r.name)) for r in report.blocks]
    t = report.totals
    totals = [("params", f"{t['params']:,} ({human(t['params'])})"),
              ("MACs", f"{human(t['macs'], ' ')}MACs"), ("FLOPs", f"{human(t['flops'], ' ')}FLOPs"),
              ("activations", mb(t["activation_bytes"])),
              ("peak", mb(t["peak_activation_bytes"])), ("layers", f"{t['layers']:,}")]
    start, deepest = depth_range(scopes, depth)
    return {"network": graph.name, "depth": start, "max_depth": deepest,
            "nodes": inputs + layers, "scopes": scopes,
            "parent": {e["id"]: e["parent"] for e in layers + scopes},
            "edges": [[src, n.id, fmt_shape(graph.shape_of(src))] for n in graph
                      for src in n.inputs], "totals": totals}


def page(graph: Graph, report: Analysis, depth: int | None) -> str:
    """The whole HTML page for ``graph`` and its ``report`` (batch 1), blocks open to
    ``depth`` levels (None: 1, every block folded)."""
    data = json.dumps(page_data(graph, report, depth), separators=(",", ":"), ensure_ascii=False)
    for char, escape in _SCRIPT_ESCAPES.items():
        data = data.replace(char, escape)
    template = resources.files("archspec.views").joinpath("graph_page.html").read_text("utf-8")
    head, tail = template.split("__DATA__")
    return head.replace("__TITLE__", html.escape(graph.name)) + data + tail

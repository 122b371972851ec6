"""`archspec graph -o FILE`: the network drawn in the format the file's suffix names.

DOT and Mermaid are text; SVG and PNG are DOT rendered by Graphviz's ``dot`` program through
the ``graphviz`` Python package (the `graph` extra); HTML is a self-contained page
(:mod:`archspec.views.html`). Only SVG and PNG need anything installed.
"""

from __future__ import annotations

from pathlib import Path

from archspec.lang import ir
from archspec.lang.diagnostics import error
from archspec.lang.extras import missing_extra
from archspec.lang.source import Span

IMAGE_FORMATS = ("svg", "png")
# File suffix -> output format.
SUFFIXES = {".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".svg": "svg", ".png": "png",
            ".html": "html", ".htm": "html"}


def format_for(path: str | Path) -> str | None:
    """The output format a file name asks for, or None for an unknown suffix."""
    return SUFFIXES.get(Path(path).suffix.lower())


def draw(spec: ir.Spec, fmt: str, depth: int | None) -> bytes:
    """``spec``'s network drawn as ``fmt`` (a value of :data:`SUFFIXES`) with blocks folded
    or, in HTML, initially open to ``depth`` levels (None: every layer; the page opens at 1)."""
    from archspec.lang.expander import expand
    from archspec.views.diagram import dot, mermaid

    graph = expand(spec)
    if fmt == "html":
        from archspec.analysis.report import analyze
        from archspec.views.html import page

        return page(graph, analyze(spec, graph=graph), depth).encode("utf-8")
    if fmt == "mermaid":
        return mermaid(graph, depth).encode("utf-8")
    text = dot(graph, depth)
    return text.encode("utf-8") if fmt == "dot" else render(text, fmt, spec.span)


def render(dot_text: str, fmt: str, where: Span) -> bytes:
    """``dot_text`` rendered by Graphviz as ``fmt`` ("svg" or "png") bytes. A missing Python
    package or ``dot`` program is an error located at ``where`` (the spec) naming what to
    install."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"fmt must be one of {IMAGE_FORMATS}, got {fmt!r}")
    try:
        import graphviz
    except ImportError:
        raise missing_extra(f"drawing {fmt.upper()}", "graph", at=where) from None
    try:
        return graphviz.Source(dot_text).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise error("E801", f"drawing {fmt.upper()} needs Graphviz's `dot` program, which is "
                            "not on PATH", where,
                    hint="install the system package `graphviz` (apt-get install graphviz, "
                         "brew install graphviz, conda install graphviz), or write .dot, "
                         ".mmd or .html") from None

"""One document as the editor sees it: its text parsed, expanded and analysed, with every
diagnostic (errors of every independent statement, and warnings), and the lookups the editor
features share (what is at a position, what a name means)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archspec.analysis.report import Analysis, Row, analyze
from archspec.lang import ir
from archspec.lang.diagnostics import ArchspecError, Diagnostic
from archspec.lang.expander import expand
from archspec.lang.network import Graph, OpNode, Scope
from archspec.lang.source import SourceFile, Span
from archspec.lang.syntax.loader import (
    STD_PREFIX,
    ImportCache,
    format_of,
    loads,
    search_roots,
    std_root,
)


@dataclass
class Snapshot:
    """What is known about one version of a document. ``spec`` is None when it does not
    parse, ``graph`` and ``analysis`` when it does not expand. ``reads`` holds every file
    read for its imports (directly or not), by resolved path, with its stamp when read
    (:meth:`ImportCache.stamp`)."""

    path: Path
    source: SourceFile
    spec: ir.Spec | None = None
    graph: Graph | None = None
    analysis: Analysis | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    reads: dict[Path, object] = field(default_factory=dict)

    def outdated(self, stamp: Callable[[Path], object]) -> bool:
        """Whether a file read for its imports has changed since (``stamp``: what it is now)."""
        return any(stamp(path) != then for path, then in self.reads.items())

    # ------------------------------------------------------------------ lookups
    def here(self, span: Span) -> bool:
        """Whether ``span`` points into this document (not an imported file)."""
        return span.source.name == self.source.name

    def rows(self) -> dict[str, Row]:
        """The analysis rows (layers and block subtotals) by name."""
        if self.analysis is None:
            return {}
        return {r.name: r for r in (*self.analysis.layers, *self.analysis.blocks)}

    def nodes_on(self, line: int) -> list[OpNode]:
        """The layers a statement on ``line`` (1-based) of this document made, in order."""
        if self.graph is None:
            return []
        return [n for n in self.graph if n.span.line == line and self.here(n.span)]

    def nodes_at(self, line: int, col: int) -> list[OpNode]:
        """The layers whose call is at (``line``, ``col``), 1-based: the call's name."""
        return [n for n in self.nodes_on(line) if _covers(n.span, col)]

    def scopes_at(self, line: int, col: int) -> list[Scope]:
        """The block calls whose call is at (``line``, ``col``)."""
        if self.graph is None:
            return []
        return [s for s in self.graph.scopes.values() if s.kind != "group"
                and s.span.line == line and self.here(s.span) and _covers(s.span, col)]

    def blocks(self) -> dict[str, ir.BlockDef]:
        """Every block the document can call (its own and imported ones)."""
        return self.spec.all_blocks() if self.spec is not None else {}

    def definitions(self, name: str) -> list[Span]:
        """Where ``name`` is defined in this document: an input, a parameter (of the network
        or a block), a label or an assigned name, a loop variable."""
        if self.spec is None:
            return []
        found = [d.span for d in self.spec.inputs if d.name == name]
        found += [p.span for p in self.spec.params if p.name == name]
        for block in self.spec.blocks:
            found += [p.span for p in block.params if p.name == name]
        for node in walk(self.spec):
            if isinstance(node, ir.Chain) and node.label is not None:
                if label_text(node.label) == name or name in node.more:
                    found.append(node.label.span)
            elif isinstance(node, ir.For) and name in node.vars:
                found.append(node.span)
        return sorted((s for s in found if self.here(s)), key=lambda s: (s.line, s.col))

    def names(self) -> list[str]:
        """The names a statement of the document may read: inputs, parameters, labels and
        assigned names, loop variables, in the order they are defined."""
        if self.spec is None:
            return []
        out = [d.name for d in self.spec.inputs] + [p.name for p in self.spec.params]
        for block in self.spec.blocks:
            out += [p.name for p in block.params] + list(block.inputs)
        for node in walk(self.spec):
            if isinstance(node, ir.Chain) and node.label is not None:
                out += [label_text(node.label), *node.more]
            elif isinstance(node, ir.For):
                out += list(node.vars)
        return list(dict.fromkeys(n for n in out if n))

    def import_target(self, rel: str) -> Path | None:
        """The file ``import "rel"`` reads, found as the loader finds it (None if none)."""
        if rel.startswith(STD_PREFIX):
            folders: tuple[Path, ...] = (std_root(),)
            rel = rel.removeprefix(STD_PREFIX)
        else:
            folders = (self.path.parent, *search_roots())
        return next((f / rel for f in folders if (f / rel).is_file()), None)


def _covers(span: Span, col: int) -> bool:
    end = span.end_col if span.end_col and span.end_col > span.col else span.col + 1
    return span.col <= col < end


def label_text(label: ir.Label) -> str:
    """A label as written when it has no ``{...}`` holes (``conv1``, ``convs.0``), else ''."""
    return "".join(label.parts) if all(isinstance(p, str) for p in label.parts) else ""


def walk(tree: Any) -> Iterator[ir.Node]:
    """Every IR node in ``tree``, parents before children, in the order written."""
    stack: list[Any] = [tree]
    while stack:
        obj = stack.pop()
        if isinstance(obj, ir.Node):
            yield obj
            stack.extend(reversed([v for k, v in obj.__dict__.items() if k != "span"]))
        elif isinstance(obj, (tuple, list)):
            stack.extend(reversed(obj))


def take(text: str, path: Path, imports: ImportCache | None = None) -> Snapshot:
    """Parse, expand and analyse ``text`` (the document at ``path``, which need not be saved),
    its imports read through ``imports`` (parsed once while unchanged, and recorded in
    ``reads``): every error and warning becomes one of its diagnostics."""
    name = str(path)
    snap = Snapshot(path, SourceFile(name, text))
    try:
        with imports.recording() if imports is not None else nullcontext(snap.reads) as read:
            snap.reads = read
            snap.spec = loads(text, format_of(path), name=name, base=path.parent,
                              imports=imports)
        snap.graph = expand(snap.spec)
        snap.analysis = analyze(snap.spec, batch=None, graph=snap.graph)
    except ArchspecError as exc:
        snap.diagnostics += exc.diagnostics
    if snap.graph is not None:
        snap.diagnostics += snap.graph.warnings
    return snap

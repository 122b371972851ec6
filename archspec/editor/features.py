"""What the editor asks about a document, answered from its :class:`Snapshot`: diagnostics,
hover, inlay hints (each layer line's output shape), go to definition and document symbols.
Positions are LSP's: 0-based lines and characters."""

from __future__ import annotations

import re
from pathlib import Path

from lsprotocol import types as lsp

from archspec.analysis.report import Row
from archspec.editor.snapshot import Snapshot, label_text, walk
from archspec.lang import ir
from archspec.lang.diagnostics import Diagnostic
from archspec.lang.network import OpNode
from archspec.lang.plugins import lookup
from archspec.lang.source import Span
from archspec.lang.values import show, signature
from archspec.ops import OpDef

SOURCE = "archspec"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMPORT = re.compile(r'^\s*import\s+"([^"\n]*)"')
# An inlay hint lists at most this many distinct shapes (a block line made by many calls).
SHAPES_SHOWN = 3


def uri_of(path: str | Path) -> str:
    """The ``file://`` URI of a file (a relative name is taken from the working folder)."""
    return Path(path).resolve().as_uri()


def span_range(span: Span) -> lsp.Range:
    """The LSP range of a span (one line; at least one character)."""
    start = max(span.col - 1, 0)
    end = span.end_col - 1 if span.end_col and span.end_col > span.col else start + 1
    line = max(span.line - 1, 0)
    return lsp.Range(lsp.Position(line, start), lsp.Position(line, end))


# ---------------------------------------------------------------------- diagnostics
def diagnostics(snap: Snapshot) -> list[lsp.Diagnostic]:
    """Every diagnostic of the document: errors as errors, warnings as warnings, with code,
    range, hint and notes; one from an imported file is shown at the top of the document."""
    return [_diagnostic(snap, d) for d in snap.diagnostics]


def _diagnostic(snap: Snapshot, d: Diagnostic) -> lsp.Diagnostic:
    here = snap.here(d.span)
    message = d.message if here else f"{d.span}: {d.message}"
    if d.hint:
        message += f"\nhint: {d.hint}"
    related = [lsp.DiagnosticRelatedInformation(lsp.Location(uri_of(s.file), span_range(s)), n)
               for n, s in d.notes if s.file != "<unknown>"]
    return lsp.Diagnostic(
        range=span_range(d.span) if here else lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)),
        message=message, code=d.code, source=SOURCE,
        severity=(lsp.DiagnosticSeverity.Warning if d.severity == "warning"
                  else lsp.DiagnosticSeverity.Error),
        related_information=related or None)


# ---------------------------------------------------------------------- hover
def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    """A per-sample shape with the symbolic batch: ``[N, 64, 56, 56]``."""
    return "[" + ", ".join(["N", *map(str, shape)]) + "]"


def numbers(row: Row | None) -> str:
    """``params 9,408 · MACs 118,013,952``: a row's counts as `archspec check` gives them."""
    if row is None:
        return ""
    return f"params {row.params:,} · MACs {row.macs:,} · FLOPs {row.flops:,}"


def summary(op: OpDef) -> str:
    """The first sentence of an op's doc."""
    first = op.doc.split(". ")[0].strip()
    return first if first.endswith(".") else first + "."


def word_at(text: str, char: int) -> tuple[str, int] | None:
    """The name at character ``char`` of a line, with its start (0-based)."""
    for m in _WORD.finditer(text):
        if m.start() <= char <= m.end():
            return m.group(), m.start()
    return None


def hover(snap: Snapshot, pos: lsp.Position) -> lsp.Hover | None:
    """A layer: its op's signature and one-line doc, output shape, params and MACs. A block
    call: the block's parameters and the call's totals. A block's name where it is defined:
    its parameters and what its calls total. An op's name anywhere: its signature and doc."""
    line, col = pos.line + 1, pos.character + 1
    nodes = snap.nodes_at(line, col)
    scopes = snap.scopes_at(line, col)
    if scopes:
        text = _block_call_hover(snap, scopes)
    elif nodes:
        text = _layer_hover(snap, nodes)
    else:
        found = word_at(snap.source.line(line), pos.character)
        text = _name_hover(snap, found[0], line) if found else None
    if not text:
        return None
    return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text))


def _layer_hover(snap: Snapshot, nodes: list[OpNode]) -> str:
    node = nodes[0]
    op = lookup(node.op)
    head = f"**`{node.id}`**: `{signature(op)}`" if op else f"**`{node.id}`**"
    lines = [head, "", summary(op) if op else "", "",
             f"output `{shape_text(node.shape)}` · {numbers(snap.rows().get(node.id))}"]
    if len(nodes) > 1:
        lines.append(f"\n(1 of {len(nodes)} layers made here)")
    return "\n".join(lines)


def _block_signature(block: ir.BlockDef) -> str:
    params = ", ".join(p.name + ("" if p.type == "any" else f": {p.type}")
                       + ("" if p.default is None else " = ...") for p in block.params)
    inputs = f"({', '.join(block.inputs)})" if block.inputs else ""
    return f"block {block.name}({params}){inputs}"


def _block_call_hover(snap: Snapshot, scopes: list) -> str:
    scope = scopes[0]
    block = snap.blocks().get(scope.kind)
    row = snap.rows().get(scope.path)
    args = ", ".join(f"{k}={show(v)}" for k, v in scope.args.items())
    shape = f"output `{shape_text(row.output_shape[1:])}` · " if row else ""
    lines = [f"**`{scope.path}`**: `{_block_signature(block) if block else scope.kind}`", "",
             f"called with {args or 'no arguments'}", "", shape + numbers(row)]
    if len(scopes) > 1:
        lines.append(f"\n(1 of {len(scopes)} calls made here)")
    return "\n".join(lines)


def _name_hover(snap: Snapshot, name: str, line: int) -> str | None:
    block = snap.blocks().get(name)
    if block is not None:
        calls = [s for s in snap.graph.scopes.values() if s.kind == name] if snap.graph else []
        rows = [r for s in calls if (r := snap.rows().get(s.path))]
        total = (f"{len(calls)} call(s) in all: params {sum(r.params for r in rows):,} · "
                 f"MACs {sum(r.macs for r in rows):,}") if rows else "not called"
        return f"**`{_block_signature(block)}`**\n\n{total}"
    op = lookup(name)
    if op is not None:
        return f"**`{signature(op)}`**\n\n{op.doc}"
    return None


# ---------------------------------------------------------------------- inlay hints
def code_end(text: str) -> int:
    """Where a line's code ends: before its comment, trailing spaces left out."""
    quoted = False
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == "#" and not quoted:
            return len(text[:i].rstrip())
    return len(text.rstrip())


def inlay_hints(snap: Snapshot, first: int, last: int) -> list[lsp.InlayHint]:
    """``-> [N, 256, 56, 56]`` at the end of each line (0-based, ``first`` to ``last``) whose
    statement makes a layer: the shape of the last layer it makes (each distinct shape when a
    block line is made by several calls)."""
    if snap.graph is None:
        return []
    by_line: dict[int, dict[str, list[OpNode]]] = {}
    for node in snap.graph:
        if snap.here(node.span) and first + 1 <= node.span.line <= last + 1:
            by_line.setdefault(node.span.line, {}).setdefault(node.id.rsplit(".", 1)[0],
                                                              []).append(node)
    hints = []
    for line, groups in sorted(by_line.items()):
        real = [g[-1] for g in groups.values() if not g[-1].synthetic] or \
            [g[-1] for g in groups.values()]
        shapes = list(dict.fromkeys(shape_text(n.shape) for n in real))
        label = " | ".join(shapes[:SHAPES_SHOWN]) + (" | ..." if len(shapes) > SHAPES_SHOWN
                                                     else "")
        end = code_end(snap.source.line(line))
        hints.append(lsp.InlayHint(lsp.Position(line - 1, end), f"-> {label}",
                                   kind=lsp.InlayHintKind.Type, padding_left=True))
    return hints


# ---------------------------------------------------------------------- definition
def definition(snap: Snapshot, pos: lsp.Position) -> lsp.Location | None:
    """An import's file, a called block's definition, or where a name read as an input (or
    in an expression) is defined: the nearest definition before it, else the first."""
    text = snap.source.line(pos.line + 1)
    imported = _IMPORT.match(text)
    if imported:
        target = snap.import_target(imported.group(1))
        return lsp.Location(target.resolve().as_uri(), lsp.Range(lsp.Position(0, 0),
                                                                 lsp.Position(0, 0))) \
            if target else None
    found = word_at(text, pos.character)
    if found is None:
        return None
    name, start = found
    block = snap.blocks().get(name)
    if block is not None:
        return lsp.Location(uri_of(block.span.file), span_range(block.span))
    before_name = re.search(r"[A-Za-z0-9_.]*$", text[:start])
    path = (before_name.group() if before_name else "") + name
    spans = snap.definitions(path.split(".")[0])  # `backbone.relu`: the label `backbone`
    before = [s for s in spans if (s.line, s.col) <= (pos.line + 1, pos.character + 1)]
    chosen = before[-1] if before else spans[0] if spans else None
    return lsp.Location(uri_of(chosen.file), span_range(chosen)) if chosen else None


# ---------------------------------------------------------------------- symbols
def symbols(snap: Snapshot) -> list[lsp.DocumentSymbol]:
    """The network (with its inputs and parameters), each block of the document (with its
    labelled layers) and the network's labelled layers."""
    spec = snap.spec
    if spec is None:
        return []
    children = [_symbol(d.name, lsp.SymbolKind.Variable, d.span, "input")
                for d in spec.inputs]
    children += [_symbol(p.name, lsp.SymbolKind.TypeParameter, p.span, "parameter")
                 for p in spec.params if snap.here(p.span)]
    children += _layers(snap, spec.body)
    out = [_symbol(b.name, lsp.SymbolKind.Class, b.span, "block", _layers(snap, b.body))
           for b in spec.blocks if snap.here(b.span)]
    return [_symbol(spec.name, lsp.SymbolKind.Module, spec.span, "network", children), *out]


def _layers(snap: Snapshot, body: tuple) -> list[lsp.DocumentSymbol]:
    return [_symbol(label_text(n.label), lsp.SymbolKind.Field, n.label.span, "layer")
            for n in walk(body) if isinstance(n, ir.Chain) and n.label is not None
            and label_text(n.label) and snap.here(n.label.span)]


def _symbol(name: str, kind: lsp.SymbolKind, span: Span, detail: str,
            children: list[lsp.DocumentSymbol] | None = None) -> lsp.DocumentSymbol:
    where = span_range(span)
    return lsp.DocumentSymbol(name=name, kind=kind, range=where, selection_range=where,
                              detail=detail, children=children or None)

"""Completion: inside an op's (or block's) first parentheses, its attributes (parameters) with
their types and defaults, then the names in scope; elsewhere the ops, the blocks, the names in
scope and the keywords."""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from archspec.editor.features import summary
from archspec.editor.snapshot import Snapshot
from archspec.lang import ir
from archspec.lang.plugins import lookup
from archspec.lang.values import show, signature
from archspec.ops import REGISTRY, OpDef

KEYWORDS = ("import", "network", "input", "output", "init", "block", "repeat", "as", "for",
            "in", "if", "else", "concat", "residual", "shortcut", "dense", "true", "false",
            "none", "and", "or", "not")
_CALLEE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*$")
# How far back (characters) completion looks for the parenthesis it is inside.
LOOK_BACK = 4000


def enclosing_call(text: str) -> tuple[str, bool] | None:
    """The callee whose parentheses the end of ``text`` is inside, and whether they are its
    first ones (attributes) rather than its inputs (``op(...)(a, b)``); None outside any."""
    depth = 0
    for i in range(len(text) - 1, max(len(text) - LOOK_BACK, 0) - 1, -1):
        char = text[i]
        if char in ")]":
            depth += 1
        elif char == "[" and depth:
            depth -= 1
        elif char == "(":
            if depth:
                depth -= 1
                continue
            before = text[:i]
            callee = _CALLEE.search(before)
            if callee:
                return callee.group(1), True
            return (_callee_of_inputs(before), False) if before.endswith(")") else None
        elif char in "{}" and depth == 0:  # a body's brace: outside any call
            return None
    return None


def _callee_of_inputs(text: str) -> str:
    """``op(...)`` before a second ``(``: the op's name."""
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            callee = _CALLEE.search(text[:i])
            return callee.group(1) if callee else ""
    return ""


def completions(snap: Snapshot, text_before: str) -> list[lsp.CompletionItem]:
    """The items for a cursor after ``text_before`` (the document up to it)."""
    call = enclosing_call(text_before)
    names = [lsp.CompletionItem(n, kind=lsp.CompletionItemKind.Variable, detail="name")
             for n in snap.names()]
    if call is not None:
        callee, attributes = call
        if not attributes:
            return names
        op = lookup(callee)
        block = snap.blocks().get(callee)
        if op is not None:
            return [*_attributes(op), *names]
        if block is not None:
            return [*_parameters(block), *names]
        return names
    ops = [lsp.CompletionItem(name, kind=lsp.CompletionItemKind.Function,
                              detail=signature(op), documentation=summary(op))
           for name, op in sorted(REGISTRY.items())]
    blocks = [lsp.CompletionItem(name, kind=lsp.CompletionItemKind.Class,
                                 detail=f"block {name}({', '.join(p.name for p in b.params)})")
              for name, b in sorted(snap.blocks().items())]
    words = [lsp.CompletionItem(k, kind=lsp.CompletionItemKind.Keyword) for k in KEYWORDS]
    return [*ops, *blocks, *names, *words]


def _attributes(op: OpDef) -> list[lsp.CompletionItem]:
    items = []
    for name, f in op.attrs.model_fields.items():
        if op.outputs is not None and name == "index":
            continue
        kind = getattr(f.annotation, "__name__", None) or str(f.annotation)
        default = "required" if f.is_required() else f"default {show(f.default)}"
        items.append(lsp.CompletionItem(
            name, kind=lsp.CompletionItemKind.Property, detail=f"{kind}, {default}",
            insert_text=f"{name}=", documentation=signature(op)))
    return items


def _parameters(block: ir.BlockDef) -> list[lsp.CompletionItem]:
    return [lsp.CompletionItem(
        p.name, kind=lsp.CompletionItemKind.Property, insert_text=f"{p.name}=",
        detail=f"{p.type}, " + ("required" if p.default is None else "has a default"))
        for p in block.params]

"""The flat graph both import routes build: one node per archspec op, in topological order,
with the module scopes it came from. Folding (fold.py) turns it into a spec.

Shapes are per sample (no batch dimension), as everywhere in archspec: ``(64, 56, 56)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archspec.lang.diagnostics import ArchspecError, error
from archspec.lang.source import NOWHERE, SourceFile, Span
from archspec.ops import REGISTRY

Shape = tuple[int, ...]

#: Containers whose scope becomes a labelled group, never a block: they only hold children.
CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})


@dataclass
class FlatNode:
    """One op of the imported model.

    ``id``: unique, the module path for a module's call (``layer1.0.conv1``), else a made one.
    ``scope``: the enclosing module scopes, outermost first, as ``(path, class name)`` pairs,
    not counting the node's own module. ``module``: the node's own module path (its label and
    state_dict prefix), or None for a function call. ``inputs``: ids of earlier nodes or graph
    inputs. ``shape``: the per-sample output shape.
    """

    id: str
    op: str
    attrs: dict[str, Any]
    inputs: tuple[str, ...]
    scope: tuple[tuple[str, str], ...]
    module: str | None
    shape: Shape
    stateful: bool = False
    where: str = ""


@dataclass
class FlatGraph:
    """A model as archspec ops: ``inputs`` (name -> per-sample shape), ``nodes`` in topological
    order, the ``output`` node id, ``weights`` (state_dict key -> tensor), ``notes`` for the
    spec's header comment; ``outputs`` (name -> node id, in order) when the source returns a
    dict of several tensors (``output`` is then the first)."""

    name: str
    inputs: dict[str, Shape]
    nodes: list[FlatNode]
    output: str
    weights: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


def where(source: str, line: int = 1) -> Span:
    """A span naming the imported file (or Python object) for a located error."""
    return Span(SourceFile(source, ""), line, 1) if source else NOWHERE


def unsupported(kind: str, path: str, source: str, hint: str, span: Span | None = None
                ) -> ArchspecError:
    """E620 for a node the importer cannot lift: ``kind`` (a module class, a function, an ONNX
    op type), ``path`` (the module path or ONNX node name) and what to do about it."""
    at = f" at `{path}`" if path else ""
    return error("E620", f"cannot import {kind}{at}: archspec has no op for it", span or
                 where(source), hint=hint)


def closest_hint(kind: str) -> str:
    """What to do about an op without an archspec op: a plugin, or the nearest registered op
    by name (``ops`` registry)."""
    key = kind.lower().replace("_", "")
    near = sorted(n for n in REGISTRY if n.replace("_", "") in key or key in n.replace("_", ""))
    extra = f"; the closest archspec ops by name: {', '.join(near[:4])}" if near else ""
    return ("write a plugin op for it (docs/plugins.md), or replace it in the model with "
            f"archspec ops (`archspec ops` lists them){extra}")

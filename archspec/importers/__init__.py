"""`archspec import`: models people already have -> folded, exact specs with their weights.

Two routes build one :class:`~archspec.importers.flat.FlatGraph` (archspec ops with module
scopes): PyTorch through ``torch.fx`` (torch_route.py, torch_ops.py) and ONNX through the onnx
graph (onnx_route.py, onnx_ops.py, onnx_fold.py). Folding (fold.py, units.py, blocks.py) makes
it the spec a person would write; :func:`import_model` then proves the result: the spec
expands and its state_dict keys and shapes are exactly the weights' (E610 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archspec.importers import blocks
from archspec.importers.flat import FlatGraph
from archspec.importers.fold import Folder, scope_tree
from archspec.lang import ir
from archspec.lang.syntax.loader import loads
from archspec.lang.syntax.printer import to_text

__all__ = ["Imported", "fold_graph", "import_model"]


@dataclass
class Imported:
    """An imported model: the spec's text and IR, and its weights by state_dict key."""

    text: str
    spec: ir.Spec
    weights: dict[str, Any]
    graph: FlatGraph


def fold_graph(graph: FlatGraph) -> ir.Spec:
    """The folded spec of ``graph``: blocks, repeats, residuals and concats."""
    tree = scope_tree(graph)
    entry = next(iter(graph.inputs))
    first = Folder(graph, None)
    first.lower(tree, entry, is_block=False)
    labels = {n.module.split(".")[0] for n in graph.nodes if n.module}
    plan = blocks.plan(first.instances, labels | set(graph.inputs))
    second = Folder(graph, plan)
    body, _ = second.lower(tree, entry, is_block=False)
    groups: dict[str, list[int]] = {}
    for index, name in plan.names.items():
        groups.setdefault(name, []).append(index)
    calls: dict[int, Any] = {}
    defs: list[ir.BlockDef] = []
    for name, indices in sorted(groups.items(), key=lambda kv: min(kv[1])):
        members = [second.instances[i] for i in sorted(indices)]
        for m in members:
            m.body = blocks.fill_holes(m.body, calls)
        block, made = blocks.make_block(name, members)
        defs.append(block.model_copy(update={"body": blocks.finish(block.body)}))
        calls.update(made)
    body = blocks.finish(blocks.fill_holes(body, calls))
    inputs = tuple(ir.InputDecl(name=k, shape=tuple(ir.Lit(value=d) for d in shape))
                   for k, shape in graph.inputs.items())
    outputs = tuple(ir.OutputDecl(name=k) for k in graph.outputs)
    return ir.Spec(name=graph.name, inputs=inputs, outputs=outputs, blocks=tuple(defs),
                   body=body)


def spec_text(spec: ir.Spec, notes: list[str]) -> str:
    """The spec as text, with ``notes`` as its header comment."""
    text = to_text(spec)
    text = text.replace("\nblock ", "\n\nblock ", 0)
    return "".join(f"# {n}\n" for n in notes) + text


def finish(graph: FlatGraph, source: str) -> Imported:
    """Fold ``graph`` and prove the spec against its weights (keys and shapes, E610)."""
    from archspec.backends.weights import checked_state
    from archspec.lang.expander import expand

    spec = fold_graph(graph)
    notes = [f"Imported from {source} by `archspec import`; state_dict keys are the source's.",
             *graph.notes]
    text = spec_text(spec, notes)
    parsed = loads(text, name=f"{graph.name}.arch")
    expected = expand(parsed)
    state = checked_state(graph.weights, f"the weights of {source}", parsed, expected)
    return Imported(text, parsed, state, graph)


def import_model(source: str, inputs: dict[str, tuple[int, ...]] | None = None,
                 kwargs: dict[str, Any] | None = None) -> Imported:
    """Import ``source``: an ``.onnx`` file (runs no code), or ``package.module:callable`` /
    ``file.py:callable`` (imports and runs that code) called with ``kwargs``.

    ``inputs``: input name -> per-sample shape; for PyTorch the default is
    ``{"x": (3, 224, 224)}``, for ONNX the file's own input shapes.
    """
    if source.endswith(".onnx") and ":" not in Path(source).name:
        from archspec.importers.onnx_route import read_onnx

        return finish(read_onnx(Path(source), inputs), Path(source).name)
    from archspec.importers.python import load_module
    from archspec.importers.torch_route import trace

    model, name = load_module(source, kwargs or {})
    return finish(trace(model, inputs or {"x": (3, 224, 224)}, name), source)


def write(imported: Imported, spec_path: str | Path, weights_path: str | Path | None) -> None:
    """Write the spec text and (optionally) the weights as safetensors, each atomically."""
    from archspec.files.atomic import write_atomic

    write_atomic(spec_path, imported.text)
    if weights_path is not None:
        from safetensors.torch import save

        tensors = {k: v.detach().contiguous().cpu() for k, v in imported.weights.items()}
        write_atomic(weights_path, save(tensors, metadata={"format": "pt",
                                                           "source": "archspec import"}))

"""archspec: neural-network architectures as declarative specs.

Public API::

    spec = archspec.load("specs/resnet18.arch", num_classes=10)
    report = archspec.analyze(spec, batch=1)
    report.to_dict()["totals"]["params"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archspec.lang.diagnostics import ArchspecError, Diagnostic
from archspec.lang.extras import MissingExtra, require
from archspec.lang.ir import Spec
from archspec.lang.syntax.loader import load, loads
from archspec.lang.version import __version__

if TYPE_CHECKING:
    from archspec.lang.network import Graph
    from archspec.views.report import Report

__all__ = ["ArchspecError", "Diagnostic", "MissingExtra", "Spec", "load", "loads", "expand",
           "analyze", "show", "to_torch", "export_onnx", "__version__"]


def expand(spec: Spec) -> Graph:
    """Expand blocks, repeats and conditions of ``spec`` into a flat, shape-checked graph."""
    from archspec.lang.expander import expand as _expand

    return _expand(spec)


def analyze(spec: Spec, batch: int = 1, **options: Any) -> Report:
    """Static analysis of ``spec``: per-layer shapes, params, MACs, FLOPs, memory, totals.

    ``options``: ``dtype`` (float32|float16|bfloat16), ``convention`` (see docs/conventions.md).
    """
    from archspec.views.report import analyze as _analyze

    return _analyze(spec, batch=batch, **options)


def show(spec: Spec | str, depth: int = 1, batch: int = 1, **options: Any) -> Any:
    """For a notebook: ``spec`` (or a spec's path) shown as its totals and its graph page,
    blocks open to ``depth`` levels (:func:`archspec.views.notebook.show`; the report itself
    displays as a table with folding blocks)."""
    from archspec.views.notebook import show as _show

    return _show(spec, depth=depth, batch=batch, **options)


def to_torch(spec: Spec, device: Any = None) -> Any:
    """Compile ``spec`` to a ``torch.fx.GraphModule`` whose submodules sit at the spec's dotted
    names. ``device="meta"`` builds it without allocating memory. Imports torch (the `torch`
    extra; :class:`MissingExtra` when it is not installed)."""
    require("archspec.to_torch", "torch", at=spec.span)
    from archspec.backends.torch import to_torch as _to_torch

    return _to_torch(spec, device=device)


def export_onnx(spec: Spec, path: Any, weights: Any = None, opset: int = 17,
                batch: str | int = "dynamic", fp16: bool = False) -> Any:
    """Lower ``spec`` straight to an ONNX file at ``path`` (no tracing) and return the model's
    graph without its initialisers (the weights go once, straight into the file; load the file
    with ``onnx.load(path)`` for the whole model).

    ``weights``: a ``torch.save(state_dict)`` file (e.g. torchvision's), an `archspec train`
    checkpoint, a mapping, or None for a fresh initialisation; files are read with
    ``torch.load(weights_only=True)``. ``batch``: "dynamic" or a fixed size."""
    require("archspec.export_onnx", "torch", "onnx", at=spec.span)
    from archspec.backends.onnx import export_onnx as _export

    return _export(spec, path, weights=weights, opset=opset, batch=batch, fp16=fp16)

"""ONNX backend: the expanded graph lowered straight to ONNX with ``onnx.helper``.

No tracing: each node goes through its op's ``onnx`` rule in the registry, so export takes
milliseconds and the same spec and weights always give the same bytes. Tensor and node names
are the spec's dotted layer names; initialisers are named like state_dict keys
(``layer1.0.conv1.weight``).
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from archspec import __version__, ir
from archspec.analysis.report import analyze
from archspec.atomic import write_atomic
from archspec.diagnostics import ArchspecError, Diagnostic, error
from archspec.expander import expand
from archspec.graph import Graph, OpNode
from archspec.ops import REGISTRY, Ctx, ShapeError
from archspec.source import Span


class Builder:
    """Collects the ONNX nodes and initialisers of one export. Op rules call its methods."""

    def __init__(self, weights: Mapping[str, np.ndarray], opset: int, dtype: int,
                 batch: str | int = "batch") -> None:
        self.weights = weights
        self.opset = opset
        self.dtype = dtype
        self.batch = batch
        self.nodes: list[onnx.NodeProto] = []
        self.value_info: list[onnx.ValueInfoProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.counts: dict[str, int] = {}
        self.prefix = ""

    @property
    def np_dtype(self) -> Any:
        return np.float16 if self.dtype == TensorProto.FLOAT16 else np.float32

    def node(self, op_type: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        """Append a node named after the layer (``layer1.0.conv1``, then ``...:1`` and on)."""
        n = self.counts.get(self.prefix, 0)
        self.counts[self.prefix] = n + 1
        name = self.prefix if n == 0 else f"{self.prefix}:{n}"
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))

    def param(self, key: str) -> str:
        """The initialiser holding state_dict entry ``key`` of the current layer."""
        full = f"{self.prefix}.{key}"
        if full not in self.initializers:
            array = np.asarray(self.weights[full])
            if array.dtype.kind == "f":
                array = array.astype(self.np_dtype, copy=False)
            self.initializers[full] = numpy_helper.from_array(array, full)
        return full

    def const(self, key: str, value: Any, dtype: Any = None) -> str:
        """A constant initialiser named ``<layer>::<key>``."""
        name = f"{self.prefix}::{key}"
        array = np.asarray(value, dtype=dtype or self.np_dtype)
        self.initializers[name] = numpy_helper.from_array(array, name)
        return name

    def declare(self, name: str, shape: tuple[int, ...]) -> None:
        """State the shape of ``name`` (per sample; the batch dim goes first) where ONNX shape
        inference cannot work it out, e.g. a Resize to sizes computed from ``Shape``."""
        self.value_info.append(helper.make_tensor_value_info(name, self.dtype,
                                                             [self.batch, *shape]))

    def tmp(self, key: str) -> str:
        """A name for an intermediate tensor of the current layer."""
        return f"{self.prefix}::{key}"


def load_weights(source: str | Path | Mapping[str, Any] | None, spec: ir.Spec,
                 graph: Graph) -> dict[str, np.ndarray]:
    """State-dict arrays for ``spec``: from a ``torch.save(state_dict)`` file, an `archspec
    train` checkpoint, a mapping, or a fresh initialisation when ``source`` is None.

    Files are read with ``torch.load(weights_only=True)`` (:func:`read_checkpoint`); entries are
    checked and converted by :func:`checked_state`.
    """
    from archspec.backends.torch import to_torch

    if source is None:
        state = to_torch(spec).state_dict()
    else:
        where = "the weights" if isinstance(source, Mapping) else str(source)
        state = source if isinstance(source, Mapping) else read_checkpoint(source, spec)
        if isinstance(state.get("state_dict"), Mapping):
            state = state["state_dict"]
        state = checked_state(state, where, spec, graph)
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def bad_checkpoint(path: str | Path, reason: str, spec: ir.Spec) -> ArchspecError:
    """E611 at the spec's `network` line: ``path`` is not a checkpoint archspec reads, for
    ``reason``."""
    return error("E611", f"cannot read the weights {path}: {reason}", spec.span,
                 hint="give a torch.save(state_dict) file or an `archspec train` checkpoint "
                      "holding tensors only")


def _load_failure(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without torch's advice."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if isinstance(exc, pickle.UnpicklingError) and found:
        return (f"it holds Python objects ({found.group(1)}), not only tensors and plain "
                "containers; they are never loaded, since loading them could run code")
    return "it is truncated or not a torch.save file"


def read_checkpoint(path: str | Path, spec: ir.Spec) -> Mapping[str, Any]:
    """The mapping a ``torch.save`` file holds, read with ``torch.load(weights_only=True)``
    (so no pickled code runs). An empty, truncated or unsafe file, or one that holds no
    mapping, is an E611 at the spec's `network` line naming the file."""
    import torch

    path = Path(path)
    if path.stat().st_size == 0:
        raise bad_checkpoint(path, "the file is empty", spec)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # torch reports a bad file with many exception types
        raise bad_checkpoint(path, _load_failure(exc), spec) from None
    if not isinstance(data, Mapping):
        raise bad_checkpoint(path, f"it holds a {type(data).__name__}, not a mapping of names to "
                              "tensors", spec)
    return data


def _entry_problem(value: Any, expected: Any) -> str | None:
    """Why the checkpoint entry ``value`` cannot stand for ``expected`` (a tensor), or None."""
    import torch

    if not isinstance(value, torch.Tensor):
        return f"is a {type(value).__name__}, not a tensor"
    if value.is_meta:
        return "is a meta tensor (it has no data)"
    if value.layout != torch.strided or value.is_quantized:
        kind = "quantized" if value.is_quantized else f"{value.layout} (sparse)"
        return f"is a {kind} tensor, not a dense one"
    if value.is_complex() or expected is not None and \
            expected.is_floating_point() != value.is_floating_point():
        need = "real" if expected is None else str(expected.dtype).removeprefix("torch.")
        return f"holds {str(value.dtype).removeprefix('torch.')} values, this layer needs {need}"
    return None


def _key_span(key: str, spec: ir.Spec, graph: Graph) -> Span:
    """The layer a state-dict key belongs to, or the spec's `network` line."""
    node = graph.nodes.get(key.rsplit(".", 1)[0])
    return node.span if node is not None else spec.span


def checked_state(state: Mapping[Any, Any], where: str, spec: ir.Spec,
                  graph: Graph) -> dict[str, Any]:
    """``state`` as the spec's tensors: every entry a dense tensor with data, floating where
    the layer's is (bf16, fp16 and float64 converted to its dtype), integer where it is
    integer; keys and shapes as :func:`_check_state` checks them. Anything else is located."""
    from archspec.backends.torch import to_torch

    expected = to_torch(graph, device="meta").state_dict()
    for key, value in state.items():
        if not isinstance(key, str):
            raise error("E612", f"{where}: the key {key!r} is not a name", spec.span,
                        hint="state-dict keys are dotted layer names")
        problem = _entry_problem(value, expected.get(key))
        if problem:
            raise error("E612", f"{where}: `{key}` {problem}", _key_span(key, spec, graph),
                        hint="save the model's state_dict() (floating weights)")
    _check_state(dict(state), expected, where, graph)
    return {k: v.to(expected[k].dtype) for k, v in state.items()}


def _check_state(state: dict[str, Any], expected: dict[str, Any], where: str,
                 graph: Graph) -> None:
    """One error listing every missing, unexpected and wrong-shape entry; each mismatch is
    also a note at the layer it belongs to."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected)
                   if tuple(state[k].shape) != tuple(expected[k].shape))
    if not (missing or extra or wrong):
        return
    notes = [(f"`{k}` is {list(state[k].shape)}, this layer needs {list(expected[k].shape)}",
              graph.nodes[k.rsplit(".", 1)[0]].span) for k in wrong[:10]]
    notes += [(f"`{k}` {list(expected[k].shape)} is missing from the weights",
               graph.nodes[k.rsplit(".", 1)[0]].span) for k in missing[:10]]
    lines = [f"unexpected: {k} {list(state[k].shape)}" for k in extra[:10]]
    span = notes[0][1] if notes else next(iter(graph.nodes.values())).span
    raise ArchspecError(Diagnostic(
        "E610", f"{where} does not fit the spec: {len(missing)} missing, {len(extra)} "
        f"unexpected, {len(wrong)} wrong-shape entries" + "".join(f"; {ln}" for ln in lines)
        + ("; ..." if len(extra) > 10 else ""), span,
        hint="check --set values (e.g. num_classes) and that the weights are for this spec",
        notes=tuple(notes)))


def _lower(node: OpNode, b: Builder) -> None:
    op = REGISTRY[node.op]
    if b.opset < op.min_opset:
        raise error("E603", f"`{node.id}` ({node.op}) needs ONNX opset {op.min_opset} or "
                    f"newer, the export asks for {b.opset}", node.span,
                    hint=f"export with --opset {op.min_opset} (or newer)")
    b.prefix = node.id
    try:
        op.onnx(Ctx(node.in_shapes, node.shape, node.attrs), b, list(node.inputs), node.id)
    except ShapeError as exc:
        raise error("E602", f"cannot lower `{node.id}` to ONNX: {exc.message}", node.span,
                    hint=exc.hint) from None


def to_onnx(spec: ir.Spec, weights: Any = None, opset: int = 17, batch: str | int = "dynamic",
            fp16: bool = False) -> onnx.ModelProto:
    """Build the ONNX model of ``spec`` (see :func:`export_onnx`)."""
    graph = expand(spec)
    arrays = load_weights(weights, spec, graph)
    dtype = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    dim = "batch" if batch == "dynamic" else int(batch)
    b = Builder(arrays, opset, dtype, dim)
    for node in graph:
        _lower(node, b)
    inputs = [helper.make_tensor_value_info(k, dtype, [dim, *s]) for k, s in graph.inputs.items()]
    outputs = []
    for name, value in graph.outputs.items():
        if name != value:
            b.prefix = name
            b.node("Identity", [value], [name])
        outputs.append(helper.make_tensor_value_info(name, dtype, [dim, *graph.shape_of(value)]))
    onnx_graph = helper.make_graph(b.nodes, graph.name, inputs, outputs,
                                   initializer=list(b.initializers.values()),
                                   value_info=b.value_info,
                                   doc_string=_header(spec))
    model = helper.make_model(onnx_graph, producer_name="archspec", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", opset)],
                              doc_string=f"{graph.name}, exported by archspec {__version__}")
    model.ir_version = min(model.ir_version, 10)
    _metadata(model, spec, graph)
    return model


def _header(spec: ir.Spec) -> str:
    text = spec.span.source.text
    lines = [ln.lstrip("# ").rstrip() for ln in text.splitlines() if ln.startswith("#")]
    return "\n".join(lines[:12])


def _metadata(model: onnx.ModelProto, spec: ir.Spec, graph: Graph) -> None:
    totals = analyze(spec, graph=graph).totals
    props = {"archspec_version": __version__, "spec_name": spec.name,
             "spec_sha256": hashlib.sha256(spec.span.source.text.encode()).hexdigest(),
             "params": str(totals["params"]), "macs": str(totals["macs"]),
             "overrides": repr(dict(spec.overrides))}
    helper.set_model_props(model, props)


def export_onnx(spec: ir.Spec, path: str | Path, weights: Any = None, opset: int = 17,
                batch: str | int = "dynamic", fp16: bool = False) -> onnx.ModelProto:
    """Lower ``spec`` to an ONNX file at ``path`` and return the model.

    ``weights``: a state_dict file (e.g. torchvision's), an `archspec train` checkpoint, a
    mapping, or None for a fresh initialisation. ``batch``: "dynamic" (a symbolic ``batch``
    dimension) or a fixed size. ``fp16``: float16 weights, input and output.
    """
    model = to_onnx(spec, weights, opset, batch, fp16)
    write_atomic(path, model.SerializeToString())
    return model

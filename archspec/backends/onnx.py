"""ONNX backend: the expanded graph lowered straight to ONNX with ``onnx.helper``.

No tracing: each node goes through its op's ``onnx`` rule in the registry, so export takes
milliseconds and the same spec and weights always give the same bytes. Tensor and node names
are the spec's dotted layer names; initialisers are named like state_dict keys
(``layer1.0.conv1.weight``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from archspec.analysis.report import analyze
from archspec.backends.onnx_file import (
    EXTERNAL_ABOVE,
    Initialiser,
    to_proto,
    weight_bytes,
    write_external,
    write_inline,
)
from archspec.backends.weights import checked_state, checkpoint_classes, read_checkpoint
from archspec.lang import ir
from archspec.lang.diagnostics import error
from archspec.lang.expander import expand
from archspec.lang.network import Graph, OpNode
from archspec.lang.version import __version__
from archspec.ops import REGISTRY, Ctx, ShapeError


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
        self.initializers: dict[str, Initialiser] = {}
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

    def param(self, key: str | None) -> str:
        """The initialiser holding state_dict entry ``key`` of the current layer, named like
        it (kept as the array itself: its bytes are copied once, into the file or the in-memory
        model). ``None``: the layer's own learnable tensor, whose state_dict key is the layer's
        path; as the layer's output already has that name, it is ``<path>::value``."""
        full = self.prefix if key is None else f"{self.prefix}.{key}"
        name = f"{full}::value" if key is None else full
        if name not in self.initializers:
            array = np.asarray(self.weights[full])
            if array.dtype.kind == "f":
                array = array.astype(self.np_dtype, copy=False)
            self.initializers[name] = array
        return name

    def const(self, key: str, value: Any, dtype: Any = None) -> str:
        """A constant initialiser named ``<layer>::<key>``."""
        name = f"{self.prefix}::{key}"
        array = np.asarray(value, dtype=dtype or self.np_dtype)
        self.initializers[name] = numpy_helper.from_array(array, name)
        return name

    def generated(self, generator: str, size: tuple[int, ...]) -> str:
        """A constant initialiser made by ``generator`` (the ``buffer`` op's), with the values
        its torch module holds (:class:`archspec.backends.modules.tensors.Constant`): int64
        indices, or the export's float type for a mask."""
        from archspec.backends.modules.tensors import Constant

        value = Constant.generate(generator, size)
        return self.const("value", value.numpy(), None if value.is_floating_point() else "int64")

    def declare(self, name: str, shape: tuple[int, ...]) -> None:
        """State the shape of ``name`` (per sample; the batch dim goes first) where ONNX shape
        inference cannot work it out, e.g. a Resize to sizes computed from ``Shape``."""
        self.value_info.append(helper.make_tensor_value_info(name, self.dtype,
                                                             [self.batch, *shape]))

    def tmp(self, key: str) -> str:
        """A name for an intermediate tensor of the current layer."""
        return f"{self.prefix}::{key}"


def load_weights(source: str | Path | Mapping[str, Any] | None, spec: ir.Spec,
                 graph: Graph) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """State-dict arrays for ``spec``: from a ``torch.save(state_dict)`` file, an `archspec
    train` checkpoint, a mapping, or a fresh initialisation when ``source`` is None; and the
    class names a train checkpoint stores, in output order (None for any other source).

    Files are read with ``torch.load(weights_only=True)`` (:func:`read_checkpoint`); entries are
    checked and converted by :func:`checked_state`.
    """
    from archspec.backends.torch import to_torch

    classes = None
    if source is None:
        state = to_torch(spec).state_dict()
    else:
        where = "the weights" if isinstance(source, Mapping) else str(source)
        state = source if isinstance(source, Mapping) else read_checkpoint(source, spec)
        if isinstance(state.get("state_dict"), Mapping):
            classes = checkpoint_classes(state, where, spec)
            state = state["state_dict"]
        state = checked_state(state, where, spec, graph)
    return {k: v.detach().cpu().numpy() for k, v in state.items()}, classes


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
    """Build the ONNX model of ``spec`` in memory, weights included (see :func:`export_onnx`)."""
    model, initialisers = lower(spec, weights, opset, batch, fp16)
    model.graph.initializer.extend(to_proto(k, v) for k, v in initialisers.items())
    return model


def lower(spec: ir.Spec, weights: Any = None, opset: int = 17, batch: str | int = "dynamic",
          fp16: bool = False) -> tuple[onnx.ModelProto, dict[str, Initialiser]]:
    """The ONNX model of ``spec`` without initialisers, and its initialisers in order (arrays
    for weights, TensorProtos for small constants). It is the eval forward: training-only
    outputs (``output logits, train aux``) and the layers only they read are left out."""
    graph = expand(spec)
    arrays, classes = load_weights(weights, spec, graph)
    dtype = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    dim = "batch" if batch == "dynamic" else int(batch)
    b = Builder(arrays, opset, dtype, dim)
    skip = graph.train_only()  # the eval forward: no training-only output or layer
    for node in graph:
        if node.id not in skip:
            _lower(node, b)
    inputs = [helper.make_tensor_value_info(k, dtype, [dim, *s]) for k, s in graph.inputs.items()]
    outputs = []
    for name, value in graph.eval_outputs().items():
        if name != value:
            b.prefix = name
            b.node("Identity", [value], [name])
        outputs.append(helper.make_tensor_value_info(name, dtype, [dim, *graph.shape_of(value)]))
    onnx_graph = helper.make_graph(b.nodes, graph.name, inputs, outputs,
                                   value_info=b.value_info,
                                   doc_string=_header(spec))
    model = helper.make_model(onnx_graph, producer_name="archspec", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", opset)],
                              doc_string=f"{graph.name}, exported by archspec {__version__}")
    model.ir_version = min(model.ir_version, 10)
    _metadata(model, spec, graph, classes)
    return model, b.initializers


def _header(spec: ir.Spec) -> str:
    text = spec.span.source.text
    lines = [ln.lstrip("# ").rstrip() for ln in text.splitlines() if ln.startswith("#")]
    return "\n".join(lines[:12])


def _metadata(model: onnx.ModelProto, spec: ir.Spec, graph: Graph,
              classes: list[str] | None) -> None:
    """The model's metadata_props: the spec and its totals, and ``classes`` (a JSON list of
    the class names in output order) where the weights came from an `archspec train` run."""
    totals = analyze(spec, graph=graph).totals
    props = {"archspec_version": __version__, "spec_name": spec.name,
             "spec_sha256": hashlib.sha256(spec.span.source.text.encode()).hexdigest(),
             "params": str(totals["params"]), "macs": str(totals["macs"]),
             "overrides": repr(dict(spec.overrides))}
    if classes is not None:
        props["classes"] = json.dumps(classes)
    helper.set_model_props(model, props)


def export_onnx(spec: ir.Spec, path: str | Path, weights: Any = None, opset: int = 17,
                batch: str | int = "dynamic", fp16: bool = False,
                external_above: int = EXTERNAL_ABOVE) -> onnx.ModelProto:
    """Lower ``spec`` to an ONNX file at ``path``; return the model without its initialisers
    (they are in the file only: the weights' bytes go once, from the arrays to the file).

    ``weights``: a state_dict file (e.g. torchvision's), an `archspec train` checkpoint, a
    mapping, or None for a fresh initialisation. ``batch``: "dynamic" (a symbolic ``batch``
    dimension) or a fixed size. ``fp16``: float16 weights, input and output. Weights of more
    than ``external_above`` bytes go to ``<path>.data`` as ONNX external data.
    """
    model, initialisers = lower(spec, weights, opset, batch, fp16)
    if weight_bytes(initialisers.values()) > external_above:
        write_external(model, initialisers, path)
    else:
        write_inline(model, initialisers, path)
    return model

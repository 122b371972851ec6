"""The ONNX route: an ``.onnx`` file -> :class:`FlatGraph`, read as data (no code runs).

An ONNX file is hostile input, as a spec is: the file's size, its node count, every dim and
every initialiser's size are limited; external data is read only from files inside the
model's folder (no absolute path, no ``..``, no link out); a cycle or a name nothing defines
is a located error naming the node. Module scopes come from the node names PyTorch's exporter
writes (``/layer1/layer1.0/conv1/Conv``); without them the graph is still lifted, unscoped.
An ONNX file exported in eval mode has each BatchNorm folded into the Conv before it: it is
imported as it is, a conv with a bias (the header comment says so).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from archspec.importers.flat import FlatGraph, FlatNode, closest_hint, unsupported, where
from archspec.importers.onnx_fold import constant_value, fold
from archspec.importers.onnx_ops import RULES, Lifted, Node
from archspec.lang.diagnostics import error
from archspec.ops import REGISTRY
from archspec.ops.base import MAX_CHANNELS

MAX_FILE_BYTES = 4 * 2**30
MAX_NODES = 200_000
MAX_INIT_ELEMENTS = 2**31
SMALL_INIT = 4096  # initialisers up to this many elements keep their values for inference


def _confined(model: Any, folder: Path, source: str) -> None:
    """Every external-data location is a file inside ``folder`` (E115 otherwise)."""
    for init in model.graph.initializer:
        for entry in init.external_data:
            if entry.key != "location":
                continue
            target = (folder / entry.value).resolve()
            if Path(entry.value).is_absolute() or ".." in Path(entry.value).parts or \
                    not target.is_relative_to(folder.resolve()) or not target.is_file():
                raise error("E115", f"`{init.name}` reads external data from {entry.value!r}, "
                            "outside the model's folder", where(source),
                            hint="external data must be a file beside the .onnx file")


def _load(path: Path) -> Any:
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    if not path.is_file():
        raise error("E001", f"no such file {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise error("E005", f"{path} is larger than {MAX_FILE_BYTES:,} bytes", where(path.name))
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf reports a bad file as DecodeError, ValueError, ...
        raise error("E003", f"{path} is not an ONNX model ({type(exc).__name__})",
                    where(path.name)) from None
    if len(model.graph.node) > MAX_NODES:
        raise error("E703", f"{path.name} has {len(model.graph.node):,} nodes, more than "
                    f"{MAX_NODES:,}", where(path.name))
    for init in model.graph.initializer:
        size = 1
        for d in init.dims:
            size *= d
        if size > MAX_INIT_ELEMENTS or any(d < 0 for d in init.dims):
            raise error("E708", f"initialiser `{init.name}` has {size:,} elements",
                        where(path.name))
    _confined(model, path.parent, path.name)
    load_external_data_for_model(model, str(path.parent))
    return model


def _order(nodes: list[Any], known: set[str], source: str) -> list[Any]:
    """``nodes`` in topological order; a cycle or an input nothing defines is located."""
    producers = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    for n in nodes:
        for v in n.input:
            if v and v not in known and v not in producers:
                raise error("E212", f"node `{n.name or n.op_type}` reads `{v}`, which no node, "
                            "input or initialiser defines", where(source),
                            hint="the file is damaged or was cut short")
    done: set[int] = set()
    out: list[Any] = []
    state: dict[int, int] = {}
    for start in range(len(nodes)):
        stack = [(start, 0)]
        while stack:
            i, k = stack.pop()
            if i in done:
                continue
            state[i] = 1
            deps = [producers[v] for v in nodes[i].input if v in producers]
            if k < len(deps):
                stack.append((i, k + 1))
                d = deps[k]
                if state.get(d) == 1 and d not in done:
                    raise error("E112", f"node `{nodes[i].name or nodes[i].op_type}` is on a "
                                "cycle: it reads its own output through other nodes",
                                where(source), hint="an ONNX graph must be acyclic")
                if d not in done:
                    stack.append((d, 0))
                continue
            done.add(i)
            out.append(nodes[i])
    return out


def _shapes(model: Any, entry: str, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Per-sample shapes (the batch dim dropped) of every value shape inference knows, the
    input ``entry`` taken at per-sample ``shape``. Inference runs on a copy whose large
    initialisers are graph inputs of their type and shape (inference serialises the model:
    ResNet-50's weights cost it half a second); small ones (shapes, axes) keep their values,
    which inference reads, and propagates through shape arithmetic (``data_prop``)."""
    import onnx
    from onnx import helper

    g = model.graph
    big = {i.name: i for i in g.initializer if math.prod(i.dims) > SMALL_INIT}
    inputs = [helper.make_tensor_value_info(entry, i.type.tensor_type.elem_type, [
        i.type.tensor_type.shape.dim[0].dim_param or 1, *shape]) if i.name == entry else i
              for i in g.input if i.name not in big]
    light = helper.make_graph(
        list(g.node), g.name, [*inputs, *(helper.make_tensor_value_info(
            i.name, i.data_type, list(i.dims)) for i in big.values())], list(g.output),
        [i for i in g.initializer if i.name not in big])
    inferred = onnx.shape_inference.infer_shapes(helper.make_model(
        light, opset_imports=list(model.opset_import), ir_version=model.ir_version),
        data_prop=True)
    out = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims[1:]):
            out[vi.name] = tuple(d.dim_value for d in dims[1:])
    return out


def _file_shape(value: Any) -> tuple[int, ...] | None:
    """A graph input's per-sample shape as the file declares it, or None."""
    dims = value.type.tensor_type.shape.dim
    if len(dims) < 2 or not all(d.HasField("dim_value") for d in dims[1:]):
        return None
    return tuple(d.dim_value for d in dims[1:])


def _paths(nodes: list[Any]) -> list[list[str]]:
    """Each node's module path segments, from ``/a/a.0/conv1/Conv`` names."""
    out = []
    for n in nodes:
        segs = [s for s in n.name.split("/")[1:-1] if s] if n.name.startswith("/") else []
        path: list[str] = []
        for s in segs:
            head = ".".join(path)
            if head and s.startswith(head + "."):
                path = s.split(".")
            elif path and s.startswith(path[-1] + "."):
                path = [*path[:-1], *s.split(".")]
            else:
                path = [*path, s]
        out.append(path)
    return out


def read_onnx(path: Path, inputs: dict[str, tuple[int, ...]] | None) -> FlatGraph:
    """Lift the ONNX model at ``path`` into a flat graph of archspec ops."""
    from onnx import numpy_helper

    model = _load(path)
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    real = [i for i in g.input if i.name not in inits]
    if len(real) != 1 or len(g.output) != 1:
        raise unsupported("a graph with several inputs or outputs", "", path.name,
                          "import a model with one input and one output")
    name = "x"
    shape = (inputs or {}).get(name) or next(iter((inputs or {}).values()), None) \
        or _file_shape(real[0])
    if not shape or any(d <= 0 or d > MAX_CHANNELS for d in shape):
        raise error("E130", f"the input `{real[0].name}` has no fixed per-sample shape",
                    where(path.name), hint="give it with --input x=CxHxW")
    nodes = _order(list(g.node), {real[0].name, *inits}, path.name)
    shapes = _shapes(model, real[0].name, tuple(shape))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    lifter = _Lifter(nodes, inits, shapes, {real[0].name: name}, path.name, opset)
    flat = lifter.run()
    notes = ["Convolutions carry biases where the exporter folded BatchNorm into them (an "
             "eval-mode export): imported as they are in the file."] if lifter.folded else []
    return FlatGraph(path.stem.replace("-", "_").replace(".", "_") or "net", {"x": tuple(shape)},
                     flat, lifter.alias.get(g.output[0].name, g.output[0].name),
                     lifter.weights, notes)


_BATCH = ("archspec's ops keep the batch dim first and apart; this node moves it or reads "
          "across it (heads or tokens folded into the batch, as nn.MultiheadAttention's "
          "export does), or reads a value the file computes at run time")
#: why a rule refuses a node, where it is not the op's attributes: the hint of the error
REFUSALS = {op: _BATCH for op in ("Transpose", "Reshape", "Gather", "Slice", "Split",
                                  "Unsqueeze", "Squeeze", "Softmax", "Concat", "ReduceMean",
                                  "Flatten")}


class _Lifter:
    """ONNX nodes in topological order -> flat nodes. ``inits`` grows with every constant
    the file computes (Constant nodes, shape arithmetic); ``alias`` maps an ONNX value to
    the flat node (or graph input, or initialiser) that holds it; ``shapes`` holds the
    per-sample shape of every value, each lifted one as archspec's op infers it."""

    def __init__(self, nodes: list[Any], inits: dict[str, Any],
                 shapes: dict[str, tuple[int, ...]], alias: dict[str, str], source: str,
                 opset: int) -> None:
        self.nodes, self.inits, self.shapes, self.alias = nodes, inits, shapes, alias
        self.source, self.opset = source, opset
        self.paths = _paths(nodes)
        self.prefixes = {".".join(p[:k]) for p in self.paths for k in range(1, len(p))}
        self.readers = Counter(v for n in nodes for v in n.input if v)
        self.flat: list[FlatNode] = []
        self.by_id: dict[str, FlatNode] = {}
        self.weights: dict[str, Any] = {}
        self.folded = False

    def run(self) -> list[FlatNode]:
        for n, segs in zip(self.nodes, self.paths):
            if not self._constant(n):
                self._node(n, segs)
        _containers(self.flat)
        return _layernorm2d(_own_paths(self.flat))

    def _constant(self, n: Any) -> bool:
        """Record the node's outputs as constants where it computes them now."""
        if n.op_type == "Constant":
            value = constant_value(n)
            if value is None:
                raise unsupported("this kind of ONNX `Constant`", n.name or n.output[0],
                                  self.source, "only tensor, float and int constants are read")
            self.inits[n.output[0]] = value
            return True
        consts = [self.inits.get(self.alias.get(v, v), self.inits.get(v)) if v else None
                  for v in n.input]
        values = fold(n, consts, self.shapes, self.opset, SMALL_INIT)
        if values is None:
            return False
        self.inits.update(zip(n.output, values))
        return True

    def _node(self, n: Any, segs: list[str]) -> None:
        node = Node(n, self.inits, self.alias, self.shapes)
        if self._bias(node):
            return
        rule = RULES.get(n.op_type) if n.domain in ("", "ai.onnx") else None
        if rule is None:
            raise unsupported(f"the ONNX op `{n.op_type}`", n.name or n.output[0], self.source,
                              closest_hint(n.op_type))
        try:
            lifted = rule(node)
        except (KeyError, ValueError, TypeError, IndexError, ZeroDivisionError):
            lifted = None  # attributes or inputs the rule cannot read: a damaged node
        if lifted is None:
            raise unsupported(f"this use of the ONNX op `{n.op_type}`", n.name, self.source,
                              REFUSALS.get(n.op_type, closest_hint(n.op_type)))
        if lifted is True:
            self.alias[n.output[0]] = node.tensors[0] if node.tensors else node.source(0)
            return
        for out, item in zip(n.output, lifted if isinstance(lifted, list) else [lifted]):
            self._emit(n, node, segs, out, item)

    def _emit(self, n: Any, node: Node, segs: list[str], out: str, item: Lifted) -> None:
        full = ".".join(segs)
        module = full if segs and full not in self.prefixes else None
        scope_segs = segs[:-1] if module else segs
        if item.key:  # a learned tensor: at its initialiser's key, in the scopes holding it
            module = item.key
            scope_segs = segs[:max((k for k in range(len(segs) + 1) if item.key.startswith(
                ".".join([*segs[:k], ""]))), default=0)]
        if item.weights and module is None:
            module = f"{n.op_type.lower()}{len(self.flat)}"
        base = module or f"{n.op_type.lower()}_{len(self.flat)}"
        node_id, k = base, 1
        while node_id in self.by_id or node_id in self.inits:  # ids name activations only
            node_id, k = f"{base}@{k}", k + 1
        shape = self._shape(n, node, out, item)
        for key, array in item.weights.items():
            self.weights[f"{module}.{key}" if key else str(module)] = _tensor(array)
        self.folded |= item.op.startswith("conv") and "bias" in item.weights and \
            not node.source(1).endswith(".weight")  # a weight the exporter computed
        self.alias[out] = node_id
        self.shapes[out] = shape
        scope = tuple((".".join(scope_segs[:i]), "") for i in range(1, len(scope_segs) + 1))
        flat = FlatNode(node_id, item.op, item.attrs, tuple(node.tensors), scope, module,
                        shape, bool(item.weights))
        self.flat.append(flat)
        self.by_id[node_id] = flat

    def _shape(self, n: Any, node: Node, out: str, item: Lifted) -> tuple[int, ...]:
        """The lifted op's per-sample output shape, which must be shape inference's where it
        gives one (else the op does not compute this node)."""
        op = REGISTRY[item.op]
        try:
            shape = tuple(op.infer(tuple(self.shapes[v] for v in n.input if v and v in
                                         self._tensor_inputs(n)), op.attrs(**item.attrs)))
        except Exception as exc:  # the op refuses these inputs: not this node's op
            raise unsupported(f"this use of the ONNX op `{n.op_type}`", n.name, self.source,
                              f"`{item.op}` does not take it ({exc})") from None
        if out in self.shapes and self.shapes[out] != shape:
            raise unsupported(f"this use of the ONNX op `{n.op_type}`", n.name, self.source,
                              f"`{item.op}` gives {shape}, the file {self.shapes[out]}")
        return shape

    def _tensor_inputs(self, n: Any) -> set[str]:
        return {v for v in n.input if v and self.inits.get(self.alias.get(v, v),
                                                           self.inits.get(v)) is None}

    def _bias(self, node: Node) -> bool:
        """An Add of a constant vector to the only output of a bias-free ``linear`` (MatMul
        of a constant matrix): that linear, with the vector as its bias."""
        if node.proto.op_type != "Add" or len(node.tensors) != 1 or len(node.consts) != 2:
            return False
        i = 0 if node.consts[0] is not None else 1
        value = node.proto.input[1 - i]
        prev = self.by_id.get(self.alias.get(value, ""))
        if prev is None or prev.op != "linear" or prev.attrs.get("bias") or \
                self.readers[value] != 1 or node.consts[i].shape != (prev.attrs["out"],):
            return False
        prev.attrs = {**prev.attrs, "bias": True}
        self.weights[f"{prev.module}.bias"] = _tensor(node.consts[i])
        self.alias[node.proto.output[0]] = prev.id
        self.shapes[node.proto.output[0]] = prev.shape
        return True


def _tensor(array: Any) -> Any:
    import numpy as np
    import torch

    return torch.from_numpy(np.array(array, copy=True))


def _own_paths(flat: list[FlatNode]) -> list[FlatNode]:
    """Where one module's export is several nodes (a leaf of several ONNX ops: SiLU as
    Sigmoid and Mul), the node with weights (else the first) keeps the module's path; the
    others, stateless, are labelled by their op and it (``features.8.mul_2`` beside
    ``features.8.2``), so that no two layers share a label."""
    owners: dict[str, list[FlatNode]] = {}
    for n in flat:
        if n.module:
            owners.setdefault(n.module, []).append(n)
    for path, nodes in owners.items():
        keep = next((n for n in nodes if n.stateful), nodes[0])
        taken = {path}
        for n in nodes:
            if n is not keep:
                head, _, last = path.rpartition(".")
                stem = f"{head}.{n.op}_{last}" if head else f"{n.op}_{last}"
                name, k = stem, 2
                while name in taken:
                    name, k = f"{stem}{k}", k + 1
                taken.add(name)
                n.module = name
    return flat


def _siblings(path: str, op: str, count: int) -> set[str]:
    """The labels :func:`_own_paths` gives ``count`` stateless ``op`` nodes of ``path``."""
    head, _, last = path.rpartition(".")
    stem = f"{head}.{op}_{last}" if head else f"{op}_{last}"
    return {stem, *(f"{stem}{k}" for k in range(2, count + 1))}


def _layernorm2d(flat: list[FlatNode]) -> list[FlatNode]:
    """``permute((1, 2, 0)) -> layernorm -> permute((2, 0, 1))`` of one module, each read
    once (ConvNeXt's LayerNorm2d as exported): one ``layernorm2d`` at the layernorm's key."""
    readers = Counter(v for n in flat for v in n.inputs)
    by_id = {n.id: n for n in flat}
    drop: set[str] = set()
    for n in flat:
        first = by_id.get(n.inputs[0]) if n.op == "layernorm" and n.inputs else None
        last = next((m for m in flat if n.id in m.inputs), None) if first else None
        if not first or not last or first.op != "permute" or last.op != "permute" or \
                tuple(first.attrs["dims"]) != (1, 2, 0) or \
                tuple(last.attrs["dims"]) != (2, 0, 1) or readers[first.id] != 1 or \
                readers[n.id] != 1 or len(first.shape) != 3 or not n.module or \
                {first.module, last.module} != _siblings(n.module, "permute", 2):
            continue
        n.op, n.inputs, n.shape = "layernorm2d", first.inputs, last.shape
        drop |= {first.id, last.id}
        for m in flat:
            m.inputs = tuple(n.id if v == last.id else v for v in m.inputs)
    return [n for n in flat if n.id not in drop]
def _containers(flat: list[FlatNode]) -> None:
    """Scopes whose children are numbered (``features.0``, ``features.1``) were
    ``nn.Sequential``s: they become groups, not blocks."""
    children: dict[str, set[str]] = {}
    for n in flat:
        parts = [p for p, _ in n.scope] + ([n.module] if n.module else [])
        for parent, child in zip(["", *parts], parts):
            children.setdefault(parent, set()).add(child.rsplit(".", 1)[-1])
    numbered = {p for p, names in children.items() if all(c.isdigit() for c in names)}
    for n in flat:
        n.scope = tuple((p, "Sequential" if p in numbered else c) for p, c in n.scope)

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

from pathlib import Path
from typing import Any

from archspec.importers.flat import FlatGraph, FlatNode, closest_hint, unsupported, where
from archspec.importers.onnx_ops import RULES, Node
from archspec.lang.diagnostics import error
from archspec.ops.base import MAX_CHANNELS

MAX_FILE_BYTES = 4 * 2**30
MAX_NODES = 200_000
MAX_INIT_ELEMENTS = 2**31


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


def _shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Per-sample shapes of every value shape inference knows (the batch dim dropped)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    out = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims:
            out[vi.name] = tuple(d.dim_value for d in dims[1:])
    return out


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
    shapes = _shapes(model)
    name = "x"
    shape = (inputs or {}).get(name) or next(iter((inputs or {}).values()), None) \
        or shapes.get(real[0].name)
    if not shape or any(d <= 0 or d > MAX_CHANNELS for d in shape):
        raise error("E130", f"the input `{real[0].name}` has no fixed per-sample shape",
                    where(path.name), hint="give it with --input x=CxHxW")
    nodes = _order(list(g.node), {real[0].name, *inits}, path.name)
    return _lift(nodes, inits, shapes, {real[0].name: name}, path, tuple(shape),
                 g.output[0].name)


def _lift(nodes: list[Any], inits: dict[str, Any], shapes: dict[str, tuple[int, ...]],
          alias: dict[str, str], path: Path, shape: tuple[int, ...], output: str) -> FlatGraph:
    import numpy as np
    import torch
    from onnx import numpy_helper

    paths = _paths(nodes)
    prefixes = {".".join(p[:k]) for p in paths for k in range(1, len(p))}
    flat: list[FlatNode] = []
    weights: dict[str, Any] = {}
    folded = False
    for n, segs in zip(nodes, paths):
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)  # data, as initialisers
            continue
        rule = RULES.get(n.op_type)
        node = Node(n, inits, alias, shapes.get(n.output[0], ()))
        if rule is None:
            raise unsupported(f"the ONNX op `{n.op_type}`", n.name or n.output[0], path.name,
                              closest_hint(n.op_type))
        lifted = rule(node)
        if lifted is None:
            raise unsupported(f"this use of the ONNX op `{n.op_type}`", n.name, path.name,
                              closest_hint(n.op_type))
        if lifted is True:
            alias[n.output[0]] = node.tensors[0] if node.tensors else n.input[0]
            continue
        full = ".".join(segs)
        module = full if segs and full not in prefixes else None
        scope_segs = segs[:-1] if module else segs
        if lifted.weights and module is None:
            module = f"{n.op_type.lower()}{len(flat)}"
        node_id = module or f"{n.op_type.lower()}_{len(flat)}"
        scope = tuple((".".join(scope_segs[:k]), "") for k in range(1, len(scope_segs) + 1))
        for key, array in lifted.weights.items():
            weights[f"{module}.{key}"] = torch.from_numpy(np.array(array, copy=True))
        folded |= lifted.op == "conv2d" and lifted.attrs.get("bias", False)
        alias[n.output[0]] = node_id
        flat.append(FlatNode(node_id, lifted.op, lifted.attrs, tuple(node.tensors), scope,
                             module, shapes.get(n.output[0], ()), bool(lifted.weights)))
    _containers(flat)
    notes = ["Convolutions carry biases where the exporter folded BatchNorm into them (an "
             "eval-mode export): imported as they are in the file."] if folded else []
    return FlatGraph(path.stem.replace("-", "_").replace(".", "_") or "net", {"x": shape}, flat,
                     alias.get(output, output), weights, notes)


def _containers(flat: list[FlatNode]) -> None:
    """Scopes whose children are numbered (``features.0``, ``features.1``) were
    ``nn.Sequential``s: they become groups, not blocks."""
    children: dict[str, set[str]] = {}
    for n in flat:
        parts = [p for p, _ in n.scope] + ([n.module] if n.module else [])
        for parent, child in zip(["", *parts], parts):
            children.setdefault(parent, set()).add(child.rsplit(".", 1)[-1])
    for n in flat:
        n.scope = tuple((p, "Sequential" if all(c.isdigit() for c in children.get(p, {"x"}))
                         else c) for p, c in n.scope)

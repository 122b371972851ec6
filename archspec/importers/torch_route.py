"""The PyTorch route: an ``nn.Module`` -> :class:`FlatGraph` through ``torch.fx``.

``torch.fx.symbolic_trace`` keeps what an importer needs and ``torch.export`` drops: every
``call_module`` node names its module path (so labels, and hence state_dict keys, are the
source's own) and the stack of module scopes it ran in (``nn_module_stack``, with each scope's
class, which folding names blocks after), and a leaf module stays one node with its
constructor arguments, where ``torch.export`` decomposes it into aten ops. The price: fx cannot
trace data-dependent control flow; such a model is a located error that says so.

Modules of ``torch.nn`` are leaves, as fx makes them, and so is any module whose class is
named as an archspec op (``LayerNorm2d``, ``StochasticDepth``): when such a module does not
rebuild exactly, the model is traced again through it. Tensors read from module attributes
(fx ``get_attr``) are lifted where they are read: ViT's class token and position embedding,
ConvNeXt's layer scale, any other parameter as a ``parameter`` layer at its own key.

The traced graph is run once (batch 2, eval mode, no grad; on the meta device where the
model allows it, else on random input) to learn every value: tensors give per-sample shapes;
sizes and other Python values are constants.
"""

from __future__ import annotations

import inspect
import keyword
import operator
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from archspec.importers.blocks import KEYWORDS
from archspec.importers.flat import FlatGraph, FlatNode, closest_hint, unsupported, where
from archspec.importers.torch_ops import (
    function_name,
    has_named_op,
    lift_function,
    lift_module,
)
from archspec.lang.diagnostics import error

BATCH = 2  # the probe batch: 2, so that the batch dim never reads as a size-1 dim


def _values(gm: fx.GraphModule, shapes: list[tuple[int, ...]]) -> dict[fx.Node, Any]:
    """Every node's value on random inputs of per-sample ``shapes`` (batch :data:`BATCH`):
    on the meta device first (shapes without arithmetic: ResNet-50 in 0.1 s, not 3 s), then,
    where the model reads tensor data (``.item()``) or makes tensors of its own, on real
    tensors. A value read from a module attribute is then a meta tensor too: the lifter reads
    tensor data from the module (:meth:`_Lifter._data`)."""
    probe = _Probe(gm)
    meta = {k: torch.empty_like(v, device="meta") for k, v in (
        *probe.named_parameters(remove_duplicate=False),
        *probe.named_buffers(remove_duplicate=False))}
    with torch.no_grad():
        try:
            return torch.func.functional_call(
                probe, meta, tuple(torch.empty(BATCH, *s, device="meta") for s in shapes))
        except Exception:  # an op the meta device cannot run: the real run decides
            return probe(*[torch.randn(BATCH, *s) for s in shapes])


class _Probe(nn.Module):
    """Runs ``gm`` node by node and returns every node's value."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__()
        self.gm = gm

    def forward(self, *inputs: torch.Tensor) -> dict[fx.Node, Any]:
        seen: dict[fx.Node, Any] = {}

        class Recorder(fx.Interpreter):
            def run_node(self, n: fx.Node) -> Any:
                seen[n] = result = super().run_node(n)
                return result

        Recorder(self.gm).run(*inputs)
        return seen


def _scope(node: fx.Node) -> tuple[tuple[str, str], ...]:
    """The module scopes of ``node``, outermost first, as (path, class name)."""
    stack = node.meta.get("nn_module_stack") or {}
    out = []
    for path, cls in stack.values():
        name = cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1]
        out.append((path, name))
    return tuple(out)


def _source_of(module: nn.Module) -> str:
    try:
        return f"{inspect.getsourcefile(type(module))}"
    except (TypeError, OSError):
        return type(module).__qualname__


class _Refused(Exception):
    """A module traced as a leaf for its op-named class that did not rebuild exactly."""

    def __init__(self, cls: type) -> None:
        super().__init__(cls.__name__)
        self.cls = cls


class _Tracer(fx.Tracer):
    """fx's tracer, with modules whose class is named as an archspec op kept as leaves."""

    def __init__(self, refused: set[type]) -> None:
        super().__init__()
        self.refused = refused

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return super().is_leaf_module(m, module_qualified_name) or (
            type(m) not in self.refused and has_named_op(type(m)))


def trace(model: nn.Module, inputs: dict[str, tuple[int, ...]], name: str) -> FlatGraph:
    """Lift ``model`` (set to eval mode) into a flat graph of archspec ops.

    ``inputs``: graph input name -> per-sample shape (``(3, 224, 224)``), in the order of
    ``forward``'s arguments.
    """
    model.eval()
    refused: set[type] = set()
    shapes = list(inputs.values())
    while True:
        try:
            tracer = _Tracer(refused)
            gm = fx.GraphModule(model, tracer.trace(model), type(model).__name__)
        except Exception as exc:  # fx raises TraceError, TypeError... on dynamic control flow
            raise error("E620", f"cannot trace `{name}` with torch.fx: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}",
                        where(_source_of(model)),
                        hint="fx cannot follow control flow that depends on tensor values; "
                             "make that branch a leaf module or rewrite it with tensor ops"
                        ) from None
        values = _values(gm, shapes)
        try:
            return _Lifter(gm, values, name, dict(model.named_modules())).run(inputs)
        except _Refused as refusal:
            refused.add(refusal.cls)


def _tensor(v: Any) -> bool:
    return isinstance(v, torch.Tensor)


@dataclass
class _Lift:
    """One lifted node: its op, attributes, module path (label), and its inputs where they
    are not the fx node's tensor arguments (None)."""

    op: str
    attrs: dict[str, Any]
    module: str | None
    inputs: list[fx.Node] | None = None


_ADDS = ("add", "iadd")
_MULS = ("mul", "imul")


def _kind(n: fx.Node) -> str:
    """A function's or method's bare name: ``add`` for operator.add, torch.add, Tensor.add."""
    return n.target if isinstance(n.target, str) else getattr(n.target, "__name__", "")


_BARE_MODULE = nn.Module()  # its attributes (forward, train, ...) cannot name a module


def _output_name(key: object, inputs: dict[str, str]) -> bool:
    """Whether a returned dict's ``key`` can name a spec's output and the compiled module's
    layer: an identifier that is no word of the language or of Python, no ``nn.Module``
    attribute, and no input's name (``inputs``: fx placeholder -> input name)."""
    return isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key) \
        and key not in KEYWORDS and not hasattr(_BARE_MODULE, key) \
        and key not in inputs.values()


class _Lifter:
    """One traced graph -> a flat graph; ``learned`` holds the ``get_attr`` tensors not yet
    lifted (fx node name -> its ``get_attr`` node), lifted where they are read."""

    def __init__(self, gm: fx.GraphModule, values: dict[fx.Node, Any], name: str,
                 modules: dict[str, nn.Module]) -> None:
        self.gm, self.values, self.name, self.modules = gm, values, name, modules
        self.params = dict(gm.named_parameters())
        self.nodes: list[FlatNode] = []
        self.alias: dict[str, str] = {}
        self.ids: dict[str, int] = {}
        self.learned: dict[str, fx.Node] = {}
        self.notes: list[str] = []

    def run(self, inputs: dict[str, tuple[int, ...]]) -> FlatGraph:
        names = iter(inputs)
        graph_inputs: dict[str, tuple[int, ...]] = {}
        output = ""
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                key = next(names)
                self.alias[n.name] = key
                graph_inputs[key] = inputs[key]
            elif n.op == "output":
                outputs = {k: self._ref(v) for k, v in self._outputs(n.args[0]).items()}
                output = next(iter(outputs.values()))
            elif n.op == "get_attr" and _tensor(self.values.get(n)):
                self.learned[n.name] = n
            elif _tensor(self.values.get(n)):
                self._node(n)
        return FlatGraph(self.name, graph_inputs, self.nodes, output, self._weights(),
                         self.notes, outputs if len(outputs) > 1 else {})

    def _outputs(self, out: Any) -> dict[str, fx.Node]:
        """What the forward returns, by name: one tensor (named ``output``), the only entry of
        a dict (torchvision's segmenters' ``{"out": y}``: the spec returns y), or a dict of
        several tensors under names a spec can use (``output out, aux``: the spec returns the
        same dict)."""
        if isinstance(out, dict) and len(out) == 1:
            (key, out), = out.items()
            self.notes.append(f"The source returns {{{key!r}: y}}; the spec returns y.")
        if isinstance(out, fx.Node):
            return {"output": out}
        if isinstance(out, dict) and all(isinstance(v, fx.Node) and _output_name(k, self.alias)
                                         for k, v in out.items()):
            return dict(out)
        raise unsupported("an output that is not one tensor or a dict of tensors", "",
                          self.name, "import a model whose forward returns one tensor, or a "
                                     "dict of tensors whose keys are identifiers (not a word "
                                     "of the language, an nn.Module attribute or an input)")

    def _weights(self) -> dict[str, Any]:
        """The state_dict entries of the lifted layers (a module the forward never calls,
        such as an unused auxiliary head, holds none in the spec)."""
        lifted = {n.module for n in self.nodes if n.module}
        out = {}
        for k, v in self.gm.state_dict().items():
            parts = k.split(".")
            if k in lifted or any(".".join(parts[:i]) in lifted for i in range(1, len(parts))):
                out[k] = v.detach()
        return out

    def _ref(self, a: fx.Node) -> str:
        if a.name in self.learned:
            self._parameter(a)
        return self.alias.get(a.name, a.name)

    def _node(self, n: fx.Node) -> None:
        """Lift ``n``: an alias of its input, or a flat node."""
        lifted = self._learned(n) or self._piece(n) or _lift_node(
            n, self.values, self.modules, self.name)
        if lifted is _HELD:
            return
        tensors = [self._ref(a) for a in (
            lifted.inputs if isinstance(lifted, _Lift) and lifted.inputs is not None
            else _tensor_args(n, self.values))]
        if lifted is True:
            self.alias[n.name] = tensors[0]
            return
        if self.values[n].shape[:1] != (BATCH,):
            raise unsupported(f"`{n.target}` as used here", n.name, self.name,
                              "the importer lifts ops that keep the batch dim first; this one "
                              "moves it (windows or heads folded into the batch)")
        scope = _scope(n)
        if lifted.module is not None and scope and scope[-1][0] == lifted.module:
            scope = scope[:-1]
        stateful = lifted.module in self.modules and any(
            True for _ in self.modules[lifted.module].state_dict())
        self._emit(n.name, lifted, tensors, scope, tuple(self.values[n].shape[1:]),
                   stateful or lifted.op in _LEARNED, str(n.target))

    def _emit(self, fx_name: str, lifted: _Lift, tensors: list[str],
              scope: tuple[tuple[str, str], ...], shape: tuple[int, ...], stateful: bool,
              target: str) -> None:
        base = lifted.module or fx_name
        count = self.ids.get(base, 0)
        self.ids[base] = count + 1
        node_id = base if count == 0 else f"{base}@{count}"
        self.alias[fx_name] = node_id
        self.nodes.append(FlatNode(node_id, lifted.op, lifted.attrs, tuple(tensors), scope,
                                   lifted.module, shape, stateful, target))

    def _parameter(self, a: fx.Node) -> None:
        """A ``get_attr`` tensor read as it is: a ``parameter`` layer at its own key."""
        attr = self.learned.pop(a.name)
        path = str(attr.target)
        if path not in self.params:
            raise unsupported(f"the tensor attribute `{path}` (a buffer)", path, self.name,
                              "constant tensors read from module attributes are not lifted; "
                              "archspec's `buffer` op has generators for the common ones")
        shape = tuple(self.values[attr].shape)
        batch_dim = len(shape) > 1 and shape[0] == 1
        attrs = {"shape": shape, "batch_dim": batch_dim} if batch_dim else {"shape": shape}
        self._emit(a.name, _Lift("parameter", attrs, path), [], _scope(a),
                   shape[1:] if batch_dim else shape, True, path)

    def _data(self, path: str) -> torch.Tensor:
        """The tensor at module attribute ``path`` itself (a probe value may be on meta)."""
        obj: Any = self.gm
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj.detach()

    def _learned(self, n: fx.Node) -> _Lift | object | None:
        """A node reading a ``get_attr`` tensor in a known pattern: the class token
        (expanded over the batch, concatenated before the tokens), the position embedding
        (added, one per sample), a layer scale (multiplied, one per channel); else None."""
        args = _tensor_args(n, self.values)
        held = [a for a in args if a.name in self.learned]
        if len(held) != 1 or len(args) > 2:
            return None
        (p,), x = held, [a for a in args if a is not held[0]]
        t, kind = self.values[self.learned[p.name]], _kind(n)
        if kind == "expand" and len(args) == 1 and t.shape[0] == 1 and \
                self.values[n].shape[1:] == t.shape[1:]:
            self.learned[n.name] = self.learned[p.name]
            return _HELD
        if not x:
            return None
        v = self.values[x[0]]
        path = str(self.learned[p.name].target)
        if kind in ("cat", "concat") and args[0] is p and t.dim() == 3 and \
                t.shape[:2] == (1, 1) and v.dim() == 3 and _cat_dim(n) == 1:
            found = _Lift("class_token", {}, path, x)
        elif kind in _ADDS and tuple(t.shape) == (1, *v.shape[1:]):
            found = _Lift("position_embedding", {}, path, x)
        elif kind in _MULS and tuple(t.shape) == (v.shape[1], *(1,) * (v.dim() - 2)):
            found = _Lift("layer_scale", {"value": float(self._data(path).flatten()[0])},
                          path, x)
        else:
            return None
        del self.learned[p.name]
        return found

    def _piece(self, n: fx.Node) -> _Lift | bool | None:
        """``a, b = x.chunk(2, 1)`` (or ``split``) read by ``getitem``: a ``slice`` of x."""
        if n.target is not operator.getitem or not isinstance(n.args[0], fx.Node):
            return None
        call, i = n.args[0], n.args[1]
        if call.op == "call_module" and i == 0 and len(set(_tensor_args(call, self.values))) == 1:
            return self._first(call, n)
        pieces = self.values.get(call)
        if not isinstance(pieces, tuple | list) or not isinstance(i, int) or \
                _kind(call) not in ("chunk", "split"):
            return None
        (src,) = _tensor_args(call, self.values)
        x = self.values[src]
        dims = [d for d in range(1, x.dim()) if pieces[i].shape[d] != x.shape[d]]
        if len(dims) != 1:
            return None
        d = dims[0]
        start = sum(int(p.shape[d]) for p in pieces[:i])
        return _Lift("slice", {"dim": d - 1, "start": start,
                               "end": start + int(pieces[i].shape[d])}, None, [src])


    def _first(self, call: fx.Node, n: fx.Node) -> _Lift:
        """A module giving a tuple read at 0 (``nn.MultiheadAttention``'s output and weights),
        called on one tensor: that module's op."""
        module = self.modules[call.target]
        args = _tensor_args(call, self.values)
        x = args[0]
        found = lift_module(module, (tuple(self.values[x].shape[1:]),),
                            tuple(self.values[n].shape[1:]), (len(args), 0))
        if found is None:
            kind = f"`{type(module).__module__}.{type(module).__qualname__}`"
            raise unsupported(kind, call.target, self.name, closest_hint(type(module).__name__),
                              where(_source_of(module)))
        return _Lift(*found, call.target, [x])


_HELD = object()  # a get_attr tensor expanded over the batch: still held, lifted where read
_LEARNED = frozenset({"parameter", "class_token", "position_embedding", "layer_scale"})


def _cat_dim(n: fx.Node) -> int:
    dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0)
    return dim if isinstance(dim, int) else 0


def _tensor_args(n: fx.Node, values: dict[fx.Node, Any]) -> list[fx.Node]:
    """The node's inputs that are tensors, in argument order (lists flattened: torch.cat)."""
    found: list[fx.Node] = []
    fx.node.map_arg((n.args, n.kwargs), lambda a: found.append(a) or a)
    return [a for a in found if _tensor(values.get(a)) or a.op == "placeholder"]


def _concrete(n: fx.Node, values: dict[fx.Node, Any]) -> tuple[list[Any], dict[str, Any]]:
    """``n``'s arguments with every non-tensor node replaced by its value."""
    def sub(a: fx.Node) -> Any:
        v = values.get(a)
        return a if _tensor(v) or a.op == "placeholder" else v
    args, kwargs = fx.node.map_arg((n.args, n.kwargs), sub)
    return list(args), dict(kwargs)


def _lift_node(n: fx.Node, values: dict[fx.Node, Any], modules: dict[str, nn.Module],
               name: str) -> _Lift | bool:
    """The lifted op of one fx node, True for an alias, or a located error."""
    ins = [values[a] for a in _tensor_args(n, values)]
    in_shapes = tuple(tuple(t.shape[1:]) for t in ins)
    out = tuple(values[n].shape[1:])
    scope = ".".join(p for p, _ in _scope(n)[-1:]) or "the top level"
    if n.op == "call_module":
        module = modules[n.target]
        if isinstance(module, nn.Identity):
            return True
        found = lift_module(module, in_shapes, out)
        if found is None:
            if not type(module).__module__.startswith("torch.nn"):
                raise _Refused(type(module))
            kind = f"`{type(module).__module__}.{type(module).__qualname__}`"
            raise unsupported(kind, n.target, name, closest_hint(type(module).__name__),
                              where(_source_of(module)))
        return _Lift(*found, n.target)
    if n.op in ("call_function", "call_method"):
        args, kwargs = _concrete(n, values)
        lifted = lift_function(n.target, args, kwargs, ins, out)
        if lifted is None:
            kind = f"`{function_name(n.target)}`"
            raise unsupported(kind, f"{n.name}` in `{scope}", name,
                              closest_hint(getattr(n.target, "__name__", str(n.target))))
        return True if lifted is True else _Lift(*lifted, None)
    raise unsupported(f"a `{n.op}` node (`{n.target}`)", scope, name,
                      "this kind of fx node is not lifted")

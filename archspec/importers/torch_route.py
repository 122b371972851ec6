"""The PyTorch route: an ``nn.Module`` -> :class:`FlatGraph` through ``torch.fx``.

``torch.fx.symbolic_trace`` keeps what an importer needs and ``torch.export`` drops: every
``call_module`` node names its module path (so labels, and hence state_dict keys, are the
source's own) and the stack of module scopes it ran in (``nn_module_stack``, with each scope's
class, which folding names blocks after), and a leaf module stays one node with its
constructor arguments, where ``torch.export`` decomposes it into aten ops. The price: fx cannot
trace data-dependent control flow; such a model is a located error that says so.

The traced graph is run once (batch 2, random input, eval mode, no grad) to learn every
value: tensors give per-sample shapes; sizes and other Python values are constants.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import fx, nn

from archspec.importers.flat import FlatGraph, FlatNode, closest_hint, unsupported, where
from archspec.importers.torch_ops import function_name, lift_function, lift_module
from archspec.lang.diagnostics import error

BATCH = 2  # the probe batch: 2, so that the batch dim never reads as a size-1 dim


def _values(gm: fx.GraphModule, inputs: list[torch.Tensor]) -> dict[fx.Node, Any]:
    """Every node's value on ``inputs``."""
    seen: dict[fx.Node, Any] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            seen[n] = result = super().run_node(n)
            return result

    with torch.no_grad():
        Recorder(gm).run(*inputs)
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


def trace(model: nn.Module, inputs: dict[str, tuple[int, ...]], name: str) -> FlatGraph:
    """Lift ``model`` (set to eval mode) into a flat graph of archspec ops.

    ``inputs``: graph input name -> per-sample shape (``(3, 224, 224)``), in the order of
    ``forward``'s arguments.
    """
    model.eval()
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # fx raises TraceError, TypeError... on dynamic control flow
        raise error("E201", f"cannot trace `{name}` with torch.fx: {type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}", where(_source_of(model)),
                    hint="fx cannot follow control flow that depends on tensor values; make "
                         "that branch a leaf module or rewrite it with tensor ops") from None
    shapes = list(inputs.values())
    values = _values(gm, [torch.randn(BATCH, *s) for s in shapes])
    return _lift(gm, values, inputs, name, dict(model.named_modules()))


def _tensor(v: Any) -> bool:
    return isinstance(v, torch.Tensor)


def _lift(gm: fx.GraphModule, values: dict[fx.Node, Any], inputs: dict[str, tuple[int, ...]],
          name: str, modules: dict[str, nn.Module]) -> FlatGraph:
    nodes: list[FlatNode] = []
    alias: dict[str, str] = {}
    names = iter(inputs)
    ids: dict[str, int] = {}
    graph_inputs: dict[str, tuple[int, ...]] = {}
    output = ""
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            key = next(names)
            alias[n.name] = key
            graph_inputs[key] = inputs[key]
            continue
        if n.op == "output":
            out = n.args[0]
            if not isinstance(out, fx.Node):
                raise unsupported("an output that is not one tensor", "", name,
                                  "import a model whose forward returns one tensor")
            output = alias.get(out.name, out.name)
            continue
        value = values.get(n)
        if not _tensor(value):
            continue  # a size, a shape, a Python value: a constant where it is read
        lifted = _lift_node(n, gm, values, modules, name)
        tensors = [alias.get(a.name, a.name) for a in _tensor_args(n, values)]
        if lifted is True:
            alias[n.name] = tensors[0]
            continue
        op, attrs, module = lifted
        base = module or n.name
        count = ids.get(base, 0)
        ids[base] = count + 1
        node_id = base if count == 0 else f"{base}@{count}"
        alias[n.name] = node_id
        scope = _scope(n)
        if module is not None and scope and scope[-1][0] == module:
            scope = scope[:-1]
        stateful = module is not None and any(True for _ in modules[module].state_dict())
        nodes.append(FlatNode(node_id, op, attrs, tuple(tensors), scope, module,
                              tuple(value.shape[1:]), stateful, str(n.target)))
    weights = {k: v.detach().clone() for k, v in gm.state_dict().items()}
    return FlatGraph(name, graph_inputs, nodes, output, weights)


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


def _lift_node(n: fx.Node, gm: fx.GraphModule, values: dict[fx.Node, Any],
               modules: dict[str, nn.Module], name: str) -> Any:
    """(op, attrs, module path) for one fx node, True for an alias, or a located error."""
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
            kind = f"`{type(module).__module__}.{type(module).__qualname__}`"
            raise unsupported(kind, n.target, name, closest_hint(type(module).__name__),
                              where(_source_of(module)))
        return (*found, n.target)
    if n.op in ("call_function", "call_method"):
        args, kwargs = _concrete(n, values)
        found = lift_function(n.target, args, kwargs, ins)
        if found is None:
            kind = f"`{function_name(n.target)}`"
            raise unsupported(kind, f"{n.name}` in `{scope}", name,
                              closest_hint(getattr(n.target, "__name__", str(n.target))))
        return True if found is True else (*found, None)
    raise unsupported(f"a `{n.op}` node (`{n.target}`)", scope, name,
                      "tensors read straight from a module attribute are not lifted yet; "
                      "register them as a parameter of a leaf module")

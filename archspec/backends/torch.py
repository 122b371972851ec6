"""PyTorch backend: expanded graph -> ``torch.fx.GraphModule`` via each op's ``torch`` rule.

Submodules sit at the spec's dotted paths (``layer1.0.conv1``), so ``state_dict()`` keys are
the spec's names; ``print(model.code)`` shows the generated ``forward``.
"""

from __future__ import annotations

import importlib
import itertools
import keyword
import operator
import re
from collections.abc import Iterable
from typing import Any

import torch
from torch import fx, nn

from archspec.backends.naming import Namespace
from archspec.lang import ir
from archspec.lang.diagnostics import error
from archspec.lang.expander import expand
from archspec.lang.initializers import BlockPlan, Init, block_plans, plan
from archspec.lang.network import Graph, OpNode, valid_label
from archspec.lang.plugins import PLUGIN_ROOTS
from archspec.ops import REGISTRY, Ctx, Learned, Module, ShapeError, TorchCall

# Where a torch rule's qualified names may point: nothing else is ever imported by name.
ALLOWED_ROOTS = ("torch", "operator", "builtins", "archspec.backends.modules")


def may_overwrite_input(graph: Graph, node: OpNode, readers: dict[str, list[str]]) -> bool:
    """True when ``node`` may overwrite its first input: it is read by nothing else (not even
    as another input of ``node``), is not a graph input or output, and its producer neither
    aliases its own input nor needs its output for backward."""
    if not node.inputs:
        return False
    src = node.inputs[0]
    if src not in graph.nodes or src in node.inputs[1:]:
        return False
    producer = REGISTRY[graph.nodes[src].op]
    return (readers[src] == [node.id] and src not in graph.outputs.values()
            and producer.fresh_output and not producer.keeps_output)


def lower(node: OpNode, inplace: bool = False) -> TorchCall:
    """The node's torch call description, from its op's ``torch`` rule (a module must sit at
    a path PyTorch can hold)."""
    op = REGISTRY[node.op]
    ctx = Ctx(node.in_shapes, node.shape, node.attrs, inplace)
    try:
        call = op.torch(ctx)
    except ShapeError as exc:
        raise error("E502", f"cannot lower `{node.id}` to PyTorch: {exc.message}", node.span,
                    hint=exc.hint) from None
    if isinstance(call, Module | Learned):
        check_module_path(node)
    parts = (call.factory, call.combine) if isinstance(call, Learned) else (call,)
    for target in (part.target for part in parts):
        if not allowed(target):
            raise error("E502", f"cannot lower `{node.id}` to PyTorch: its op `{node.op}` names "
                        f"{target!r}, outside torch and the op's own package", node.span,
                        hint="a torch rule may name torch, operator, builtins, archspec's "
                             "helpers or its plugin's own package")
    return call


def allowed(target: str) -> bool:
    """Whether a torch rule's qualified name is under :data:`ALLOWED_ROOTS` or a plugin
    package (lang/plugins.py): nothing else is ever imported or written by name."""
    roots = (*ALLOWED_ROOTS, *sorted(PLUGIN_ROOTS))
    return any(target == r or target.startswith(r + ".") for r in roots)


def resolve(target: str) -> Any:
    """The object a qualified name (``torch.nn.Conv2d``, ``operator.add``) names; only names
    under :data:`ALLOWED_ROOTS` or a plugin package (lang/plugins.py) resolve."""
    if not allowed(target):
        raise ValueError(f"torch rule target {target!r} is outside {ALLOWED_ROOTS} and the "
                         "plugin packages")
    path, _, name = target.rpartition(".")
    owner: Any = None
    for cut in range(len(path.split(".")), 0, -1):  # the longest importable prefix
        head = ".".join(path.split(".")[:cut])
        try:
            owner = importlib.import_module(head)
        except ImportError:
            continue
        for attr in path.split(".")[cut:]:
            owner = getattr(owner, attr)
        break
    return getattr(owner, name)


def build_module(call: Module) -> nn.Module:
    """Construct the ``nn.Module`` a :class:`Module` description names."""
    return resolve(call.target)(*call.args, **dict(call.kwargs))


_BARE_MODULE = nn.Module()  # its attributes (forward, training, ...) are reserved names


def check_module_path(node: OpNode) -> None:
    """A layer path PyTorch can hold: no part may be a Python keyword (fx would write
    ``self.class``) or an ``nn.Module`` attribute (``forward``, ``training``), nor text that fx
    cannot write as source (:func:`archspec.lang.network.valid_label`; the expander checks
    labels too, this guards graphs built by other means)."""
    for part in node.id.split("."):
        if keyword.iskeyword(part) or hasattr(_BARE_MODULE, part):
            raise error("E503", f"`{part}` in `{node.id}` cannot name a PyTorch module",
                        node.span, hint="rename the layer or block call: Python keywords and "
                                        "nn.Module attributes are reserved")
        if not valid_label(part):
            raise error("E504", f"{part!r} in {node.id!r} cannot name a PyTorch module",
                        node.span, hint="a layer name is printable text without quotes or "
                                        "backslashes, and not empty")


def _argument_names(inputs: Iterable[str]) -> list[str]:
    """The generated forward's parameter names, one per input: the input's own name where it
    is a plain ASCII identifier, else one made from it (fx writes them into source verbatim)."""
    names = list(inputs)

    def plain(name: str) -> bool:
        return name.isascii() and name.isidentifier() and not keyword.iskeyword(name) \
            and name != "self"

    made = Namespace(taken=filter(plain, names))
    return [name if plain(name) else made.name(name) for name in names]


def _lower(node: OpNode, gfx: fx.Graph, env: dict[str, fx.Node],
           modules: dict[str, nn.Module | nn.Parameter], inplace: bool) -> fx.Node:
    args = tuple(env[i] for i in node.inputs)
    call = lower(node, inplace)
    if isinstance(call, Module):
        modules[node.id] = build_module(call)
        result = gfx.call_module(node.id, args * call.repeat, dict(call.call))
        if call.item is None:
            return result
        return gfx.call_function(operator.getitem, (result, call.item))
    if isinstance(call, Learned):
        modules[node.id] = build_module(call.factory)
        args = (*args, gfx.get_attr(node.id))
        call = call.combine
    return gfx.call_function(resolve(call.target), (list(args),) if call.as_list else args,
                             dict(call.kwargs))


def apply_inits(layers: dict[str, Init], modules: dict[str, nn.Module | nn.Parameter]) -> None:
    """Initialise the weights (and biases) of ``layers``, in their order; a learnable tensor at
    its layer's own key (a ``parameter``) is the weight itself."""
    with torch.no_grad():
        for node_id, init in layers.items():
            held = modules.get(node_id)
            if isinstance(held, nn.Parameter):
                if init.func is not None:
                    getattr(nn.init, init.func)(held, **dict(init.kwargs))
                continue
            for module in _initialised(held):
                _apply(init, module)


def _apply(init: Init, module: nn.Module) -> None:
    """Initialise one module's ``weight`` and ``bias`` as ``init`` says."""
    weight = getattr(module, "weight", None)
    if init.func is not None and isinstance(weight, torch.Tensor):
        getattr(nn.init, init.func)(weight, **dict(init.kwargs))
    bias = getattr(module, "bias", None)
    if not isinstance(bias, torch.Tensor):
        return
    if init.bias is not None:
        nn.init.constant_(bias, init.bias)
    elif init.bias_func is not None:
        getattr(nn.init, init.bias_func)(bias, **dict(init.bias_kwargs))


def initialised_names(module: nn.Module | nn.Parameter | None) -> list[str]:
    """The submodules an ``init`` rule on a layer sets, by name relative to it: the layer
    itself (``""``) when it holds a ``weight``; for a composite op (window attention, patch
    merging), its inner linear and convolution layers (a weight of rank 2 or more; not its
    norms), in registration order, as torchvision's ``for m in self.modules(): if
    isinstance(m, nn.Linear)`` loops reach them."""
    if not isinstance(module, nn.Module):
        return []
    if isinstance(getattr(module, "weight", None), torch.Tensor):
        return [""]
    return [name for name, m in module.named_modules()
            if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.ndim >= 2]


def _initialised(module: nn.Module | nn.Parameter | None) -> list[nn.Module]:
    """The modules :func:`initialised_names` names."""
    if not isinstance(module, nn.Module):
        return []
    return [module.get_submodule(name) for name in initialised_names(module)]


def graph_module(graph: Graph, inits: tuple[ir.InitRule, ...] = ()) -> fx.GraphModule:
    """Build the GraphModule for an expanded graph, initialised as ``inits`` say (PyTorch
    defaults for ops without a rule)."""
    gfx = fx.Graph()
    env: dict[str, fx.Node] = {name: gfx.placeholder(arg) for name, arg in
                               zip(graph.inputs, _argument_names(graph.inputs), strict=True)}
    modules: dict[str, nn.Module | nn.Parameter] = {}
    readers = graph.consumers()
    built: dict[str, list[BlockPlan]] = {}
    for block in block_plans(graph):
        built.setdefault(block.after, []).append(block)
    train_only = graph.train_only()
    moved: list[fx.Node] = []  # the fx nodes of training-only layers, in order
    for node in graph:
        count = len(gfx.nodes)
        env[node.id] = _lower(node, gfx, env, modules,
                              may_overwrite_input(graph, node, readers))
        if node.id in train_only:
            made = len(gfx.nodes) - count
            moved += reversed(list(itertools.islice(reversed(gfx.nodes), made)))
        for block in built.get(node.id, ()):  # a block initialises its layers once built
            apply_inits(block.layers, modules)
    # then the network's rules, once every layer exists (as torchvision's constructors do, so
    # that a seeded build draws the same random numbers)
    apply_inits(plan(graph, inits), modules)
    outs = [env[v] for v in graph.outputs.values()]
    if len(outs) == 1:
        gfx.output(outs[0])
    else:
        gfx.output(dict(zip(graph.outputs, outs, strict=True)))
    # built in layer order (a GraphModule registers its modules in the order of its nodes:
    # the state_dict's order), then the training-only layers move to the end
    gm = fx.GraphModule(_module_tree(modules), gfx, class_name=_class_name(graph.name))
    if graph.train_outputs:
        _train_only_last(gm.graph, moved, [env[v] for v in graph.eval_outputs().values()],
                         tuple(graph.eval_outputs()))
        gm.recompile()
    gm.meta["archspec_network"] = graph.name
    return gm


def _archspec_eval_return(*values: Any) -> None:
    """Marks where ``forward`` returns in eval mode; :class:`EvalReturns` writes a ``return``
    in place of its call, which never runs."""


def _train_only_last(gfx: fx.Graph, train: list[fx.Node], results: list[fx.Node],
                     names: tuple[str, ...]) -> None:
    """Move the training-only layers' fx nodes ``train`` to the end of ``gfx`` (those that no
    other layer reads), after a marker that returns ``results`` (the eval outputs called
    ``names``) in eval mode: the eval forward does not run them, as torchvision's
    ``if self.aux_logits and self.training`` does not."""
    output = next(n for n in reversed(gfx.nodes) if n.op == "output")
    kept: set[fx.Node] = set()
    for n in reversed(train):  # a node read by a layer that stays in place stays too
        if all(u in kept or u is output for u in n.users):
            kept.add(n)
    with gfx.inserting_before(output):
        gfx.call_function(_archspec_eval_return, tuple(results))
    for n in train:
        if n in kept:
            output.prepend(n)
    gfx.set_codegen(EvalReturns(names))


# `_x = <prefix>_archspec_eval_return(a, b)` as fx writes the marker's call
_MARKER_LINE = re.compile(r"^(\s*)\w+ = \w*_archspec_eval_return\(([\w, ]*)\)")


class EvalReturns(fx.graph.CodeGen):
    """The ``forward`` of a network with training-only outputs: in eval mode it returns at the
    :func:`_archspec_eval_return` marker the eval outputs (one: the tensor itself, several: a dict),
    before the training-only layers; in training mode it runs them and returns every output
    (the dict in ``output`` order), as torchvision's ``eager_outputs`` does."""

    def __init__(self, eval_names: tuple[str, ...]) -> None:
        super().__init__()
        self.eval_names = eval_names

    def _gen_python_code(self, *args: Any, **kwargs: Any) -> fx.graph.PythonCode:
        """The generated code with the marker's line replaced by one line (so that the line
        numbers fx keeps stay right): ``if not self.training: return <eval outputs>``."""
        code = super()._gen_python_code(*args, **kwargs)
        lines = code.src.split("\n")
        for i, line in enumerate(lines):
            found = _MARKER_LINE.match(line)
            if found:
                values = found.group(2).split(", ")
                returned = values[0] if len(values) == 1 else "{" + ", ".join(
                    f"{k!r}: {v}" for k, v in zip(self.eval_names, values, strict=True)) + "}"
                lines[i] = f"{found.group(1)}if not self.training: return {returned}"
        code.src = "\n".join(lines)
        return code


def _module_tree(modules: dict[str, nn.Module | nn.Parameter]) -> nn.Module:
    """A root module holding ``modules`` (and the tensors of :class:`Learned` ops: learnable
    ones, and persistent buffers)
    at their dotted paths, registered in graph order (so ``parameters()`` and ``state_dict()``
    follow the spec, as a hand-written model's do)."""
    root = nn.Module()
    for path, module in modules.items():
        *scopes, name = path.split(".")
        holder = root
        for part in scopes:
            if part not in holder._modules:
                holder.add_module(part, nn.Module())
            holder = holder._modules[part]
        if isinstance(module, nn.Parameter):
            holder.register_parameter(name, module)
        elif isinstance(module, torch.Tensor):  # a persistent buffer (ops/constants.py)
            holder.register_buffer(name, module)
        else:
            holder.add_module(name, module)
    return root


def _class_name(name: str) -> str:
    """The GraphModule's class name: the network's name in CamelCase (``resnet18`` ->
    ``Resnet18``), made by the namespace generated code names everything with."""
    return Namespace().class_name(name, default="Network")


def state_layout(graph: Graph) -> dict[str, torch.Tensor]:
    """The state_dict the compiled ``graph`` holds, as meta tensors (its keys in order, their
    shapes and dtypes), made from the layers' modules alone: no forward is generated and no
    weight initialised, so that checking a weights file costs a fraction of a build."""
    modules: dict[str, nn.Module | nn.Parameter] = {}
    with torch.device("meta"):
        for node in graph:
            call = lower(node, False)
            if isinstance(call, Module):
                modules[node.id] = build_module(call)
            elif isinstance(call, Learned):
                modules[node.id] = build_module(call.factory)
        return _module_tree(modules).state_dict()


def to_torch(spec: ir.Spec | Graph, device: Any = None) -> fx.GraphModule:
    """Compile ``spec`` (or an expanded graph) to a ``torch.fx.GraphModule`` on ``device``.

    ``device="meta"`` builds the module without allocating parameter memory.
    """
    graph = spec if isinstance(spec, Graph) else expand(spec)
    inits = () if isinstance(spec, Graph) else spec.inits
    if device is None:
        return graph_module(graph, inits)
    with torch.device(device):
        return graph_module(graph, inits)

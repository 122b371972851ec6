"""The network's weight initialisation as data: which layers each ``init`` rule sets, grouped
so that the generated constructor draws random numbers in layer order."""

from __future__ import annotations

import torch

from archspec.backends.eject.classes import InitGroup
from archspec.backends.torch import build_module, initialised_names
from archspec.lang import ir
from archspec.lang.initializers import Init, block_plans, plan
from archspec.lang.network import Graph
from archspec.ops import REGISTRY, Ctx, Learned, Module, TorchCall

Lowered = dict[str, TorchCall]  # node id -> the call its layer lowers to

_DETERMINISTIC = frozenset({None, "constant_", "zeros_", "ones_"})  # draw no random numbers


def init_groups(layers: list[tuple[str, Init, bool]]) -> tuple[InitGroup, ...]:
    """Layers (path, init, whether the path is a learnable tensor's rather than a module's)
    grouped by initialisation so that random draws keep the given order: successive random
    layers with the same init share a group; a deterministic init is one group (modules and
    tensors apart)."""
    groups: list[tuple[tuple[Init, bool], list[str]]] = []
    fixed: dict[tuple[Init, bool], list[str]] = {}
    last: tuple[tuple[Init, bool], list[str]] | None = None
    for path, init, tensor in layers:
        key = (init, tensor)
        if init.func in _DETERMINISTIC and init.bias_func is None:
            if key not in fixed:
                fixed[key] = []
                groups.append((key, fixed[key]))
            fixed[key].append(path)
        elif last is not None and last[0] == key:
            last[1].append(path)
        else:
            last = (key, [path])
            groups.append(last)
    return tuple(InitGroup(tuple(paths), init, tensor) for (init, tensor), paths in groups)


def has_weights(graph: Graph, lowered: Lowered, node_id: str) -> bool:
    """Whether the layer is a module with parameters or a learnable tensor at its own key (what
    an init rule can set)."""
    node = graph.nodes[node_id]
    cost = REGISTRY[node.op].cost(Ctx(node.in_shapes, node.shape, node.attrs))
    return isinstance(lowered[node_id], Module | Learned) and cost.params > 0


def initialised(lowered: Lowered, node_id: str) -> list[str]:
    """The module paths an init rule on the layer sets: the layer's own, or a composite
    op's inner linear layers (:func:`initialised_names`, on a meta-device build); a learnable
    tensor's own path."""
    if isinstance(lowered[node_id], Learned):
        return [node_id]
    with torch.device("meta"):
        names = initialised_names(build_module(lowered[node_id]))
    return [f"{node_id}.{name}" if name else node_id for name in names]


def network_inits(graph: Graph, lowered: Lowered,
                  rules: tuple[ir.InitRule, ...]) -> tuple[InitGroup, ...]:
    """The blocks' ``init`` rules (as each call completes), then the network's (``rules``), as
    :mod:`archspec.lang.initializers` resolves them. The network's constructor applies them all
    once every layer exists, so the same seed draws other numbers than `compile`'s build,
    where a block initialises its layers as soon as it is built."""
    planned = [*(item for block in block_plans(graph)
                 for item in block.layers.items()),
               *plan(graph, rules).items()]
    layers = [(path, init, isinstance(lowered[node_id], Learned)) for node_id, init in planned
              if has_weights(graph, lowered, node_id)
              and (init.func is not None or init.bias is not None
                   or init.bias_func is not None) for path in initialised(lowered, node_id)]
    return init_groups(layers)

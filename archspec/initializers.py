"""Weight-initialisation schemes a spec can ask for (``init OP: SCHEME(args, bias=V)``).

This module is static (no torch): the scheme table and the checks that give located errors.
The torch backend applies a scheme with ``torch.nn.init`` (backends/torch.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from archspec import ir
from archspec.diagnostics import did_you_mean, error
from archspec.evaluate import Evaluator, show

if TYPE_CHECKING:
    from archspec.graph import Graph

# scheme -> (torch.nn.init function, its keyword arguments with defaults)
SCHEMES: dict[str, tuple[str | None, dict[str, Any]]] = {
    "default": (None, {}),
    "kaiming_normal": ("kaiming_normal_", {"a": 0.0, "mode": "fan_in",
                                           "nonlinearity": "leaky_relu"}),
    "kaiming_uniform": ("kaiming_uniform_", {"a": 0.0, "mode": "fan_in",
                                             "nonlinearity": "leaky_relu"}),
    "xavier_normal": ("xavier_normal_", {"gain": 1.0}),
    "xavier_uniform": ("xavier_uniform_", {"gain": 1.0}),
    "normal": ("normal_", {"mean": 0.0, "std": 1.0}),
    "uniform": ("uniform_", {"a": 0.0, "b": 1.0}),
    "trunc_normal": ("trunc_normal_", {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0}),
    "constant": ("constant_", {"val": 0.0}),
    "zeros": ("zeros_", {}),
    "ones": ("ones_", {}),
}


@dataclass(frozen=True)
class Init:
    """How one layer is initialised: ``torch.nn.init.<func>(weight, **kwargs)`` (no call when
    ``func`` is None) and ``constant_(bias, bias)`` when ``bias`` is not None."""

    func: str | None
    kwargs: tuple[tuple[str, Any], ...]
    bias: float | None


def plan(graph: Graph, rules: tuple[ir.InitRule, ...]) -> dict[str, Init]:
    """The initialisation of every layer some rule targets, by node id, in graph order.

    A rule targets an op kind (``conv2d``) or, when its target is not an op, the layers whose
    dotted path equals it or matches it as an fnmatch pattern (``features.*.conv``). The last
    matching rule wins. An op kind the network does not use is fine (a family's shared rules);
    a path that matches no layer is a located error (a typo).
    """
    from archspec.ops import REGISTRY

    out: dict[str, Init] = {}
    for rule in rules:
        if rule.cond is not None and not Evaluator(dict(graph.params), None)(rule.cond):
            continue
        op = REGISTRY.get(rule.op)
        hits = [n.id for n in graph if (n.op == op.name if op is not None
                                        else fnmatchcase(n.id, rule.op))]
        if not hits and op is None:
            raise error("E117", f"`init` layer path `{rule.op}` matches no layer of the "
                        "network", rule.span,
                        hint=did_you_mean(rule.op, [*graph.nodes, *REGISTRY]) or
                        "give an op kind, or a layer path / fnmatch pattern")
        func, kwargs, bias = resolve(rule, graph.params)
        for node_id in hits:
            out[node_id] = Init(func, tuple(kwargs.items()), bias)
    return {n.id: out[n.id] for n in graph if n.id in out}


def resolve(rule: ir.InitRule, params: dict[str, Any] | None = None,
            ) -> tuple[str | None, dict[str, Any], float | None]:
    """``(torch.nn.init function name, kwargs, bias constant or None)`` of a checked rule;
    argument expressions may read the network's ``params`` (``std=1 / num_classes``)."""
    func, defaults = SCHEMES[rule.scheme.callee]
    ev = Evaluator(dict(params or {}), None)
    kwargs: dict[str, Any] = {}
    names = list(defaults)
    bias = None
    for i, arg in enumerate(rule.scheme.args):
        name = arg.name or names[i]
        value = ev(arg.value)
        if not isinstance(value, (int, float, str)) or isinstance(value, bool) or (
                name == "bias" and isinstance(value, str)):
            raise error("E116", f"bad value {show(value)} for `{name}`", arg.span,
                        hint="initialisation arguments are numbers or strings")
        if name == "bias":
            bias = float(value)
        else:
            kwargs[name] = value
    return func, kwargs, bias


def check_init(rule: ir.InitRule) -> None:
    """Located errors for an unknown scheme, or arguments the scheme does not take (values,
    which may read network parameters, and whether the target matches a layer are checked
    against the expanded graph by :func:`plan`)."""
    scheme = rule.scheme
    if scheme.callee not in SCHEMES:
        raise error("E116", f"unknown initialisation scheme `{scheme.callee}`", scheme.span,
                    hint=did_you_mean(scheme.callee, SCHEMES) or
                    f"schemes: {', '.join(SCHEMES)}")
    names = list(SCHEMES[scheme.callee][1])
    for i, arg in enumerate(scheme.args):
        if arg.name is None and i >= len(names):
            raise error("E116", f"`{scheme.callee}` takes {len(names)} positional argument(s)",
                        arg.span, hint=f"arguments: {', '.join(names + ['bias']) }")
        if arg.name is not None and arg.name not in (*names, "bias"):
            raise error("E116", f"`{scheme.callee}` has no argument `{arg.name}`", arg.span,
                        hint=did_you_mean(arg.name, [*names, "bias"]) or
                        f"arguments: {', '.join(names + ['bias'])}")


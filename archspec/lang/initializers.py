"""Weight-initialisation schemes a spec can ask for (``init OP: SCHEME(args, bias=V)``).

This module is static (no torch): the scheme table and the checks that give located errors.
The torch backend applies a scheme with ``torch.nn.init`` (backends/torch.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from archspec.lang import ir
from archspec.lang.diagnostics import Diagnostic, did_you_mean, error
from archspec.lang.exprs import Evaluator
from archspec.lang.values import show

if TYPE_CHECKING:
    from archspec.lang.network import Graph, OpNode

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
    ``func`` is None), then ``constant_(bias, bias)`` when ``bias`` is not None, or
    ``torch.nn.init.<bias_func>(bias, **bias_kwargs)`` for a bias drawn by a scheme
    (``bias=normal(0, 1e-6)``)."""

    func: str | None
    kwargs: tuple[tuple[str, Any], ...]
    bias: float | None
    bias_func: str | None = None
    bias_kwargs: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class BlockPlan:
    """The init rules of one block call: applied to ``layers`` (node id -> Init) as soon as
    the call's last layer, ``after``, is built."""

    scope: str
    after: str
    layers: dict[str, Init]


def plan(graph: Graph, rules: tuple[ir.InitRule, ...]) -> dict[str, Init]:
    """The initialisation of every layer some rule targets, by node id, in graph order.

    A rule targets an op kind (``conv2d``) or, when its target is not an op, the layers whose
    dotted path equals it or matches it as an fnmatch pattern (``features.*.conv``). The last
    matching rule wins. An op kind the network does not use is fine (a family's shared rules);
    a path that matches no layer is a located error (a typo). A rule whose layers all hold no
    weights (``init relu: ...``) changes nothing: a W117 warning in ``graph.warnings``.
    """

    used: dict[Any, _Use] = {}
    out = _targets(list(graph), rules, dict(graph.params), "", used)
    _warn(graph, used)
    return out


@dataclass
class _Use:
    """What one rule reached, over every block call it is part of: the kinds of the layers
    it targets, and whether any of them holds a weight."""

    rule: ir.InitRule
    ops: set[str]
    weights: bool = False


def _warn(graph: Graph, used: dict[Any, _Use]) -> None:
    """A W117 at each rule of ``used`` whose layers hold no weights, once each however often
    the rules are planned (at expansion, then again by every backend)."""
    for use in used.values():
        if use.weights:
            continue
        warning = Diagnostic("W117", f"`init {use.rule.op}` changes nothing: the layers it "
                             f"targets ({', '.join(sorted(use.ops))}) hold no weights",
                             use.rule.span, hint="target layers with parameters (convolutions, "
                             "linear layers, norms), or remove the rule", severity="warning")
        if warning not in graph.warnings:
            graph.warnings.append(warning)


def _has_weights(node: OpNode) -> bool:
    """Whether an ``init`` rule can set something of the layer: it is a module with
    parameters, or a learnable tensor at its own key (a ``parameter``), as the torch backend
    and `archspec compile` decide."""
    from archspec.ops import REGISTRY
    from archspec.ops.base import Ctx, Learned, Module

    op = REGISTRY[node.op]
    ctx = Ctx(node.in_shapes, node.shape, node.attrs)
    return op.cost(ctx).params > 0 and isinstance(op.torch(ctx), Module | Learned)


def _targets(nodes: list[OpNode], rules: tuple[ir.InitRule, ...], env: dict[str, Any],
             scope: str, used: dict[Any, _Use]) -> dict[str, Init]:
    """The Init of every node of ``nodes`` some rule targets (paths relative to ``scope``);
    what each rule reached is added to ``used``, keyed by the rule's place."""
    from archspec.ops import REGISTRY

    out: dict[str, Init] = {}
    nodes_by_id = {n.id: n for n in nodes}
    for rule in rules:
        if rule.cond is not None and not Evaluator(env, None)(rule.cond):
            continue
        op = REGISTRY.get(rule.op)
        pattern = f"{scope}.{rule.op}" if scope else rule.op
        hits = [n.id for n in nodes if (n.op == op.name if op is not None
                                        else fnmatchcase(n.id, pattern))]
        if not hits and op is None:
            where = f"block call `{scope}`" if scope else "the network"
            raise error("E117", f"`init` layer path `{rule.op}` matches no layer of {where}",
                        rule.span,
                        hint=did_you_mean(rule.op, [n.id[len(scope) + 1 if scope else 0:]
                                                    for n in nodes] + list(REGISTRY)) or
                        "give an op kind, or a layer path / fnmatch pattern")
        init = resolve(rule, env)
        flat = [n for n in hits if _flat_weight(nodes_by_id[n])]
        if init.func in FAN_BASED and flat:
            raise error("E116", f"`{rule.scheme.callee}` reads fan-in and fan-out, which the "
                        f"1-D weight of `{flat[0]}` ({nodes_by_id[flat[0]].op}) has not",
                        rule.scheme.span, hint="target the convolutions and linear layers, or "
                                               "use normal, uniform, constant, ones")
        if hits:
            use = used.setdefault((rule.span.file, rule.span.line, rule.span.col),
                                  _Use(rule, set()))
            use.ops |= {nodes_by_id[n].op for n in hits}
            use.weights = use.weights or any(_has_weights(nodes_by_id[n]) for n in hits)
        for node_id in hits:
            out[node_id] = init
    return {n.id: out[n.id] for n in nodes if n.id in out}


def block_plans(graph: Graph) -> list[BlockPlan]:
    """The ``init`` rules of every block call, in the order the calls complete (inner calls
    first), each with the layers it sets; paths are relative to the call."""
    order = {node_id: i for i, node_id in enumerate(graph.nodes)}
    rules_of: dict[str, list[ir.InitRule]] = {}
    envs: dict[str, dict[str, Any]] = {}
    for scope, rule, env in graph.block_inits:
        rules_of.setdefault(scope, []).append(rule)
        envs[scope] = env
    out = []
    used: dict[Any, _Use] = {}
    for scope, rules in rules_of.items():
        inside = [n for n in graph if n.id.startswith(scope + ".")]
        if not inside:
            continue
        after = max((n.id for n in inside), key=order.__getitem__)
        out.append(BlockPlan(scope, after, _targets(inside, tuple(rules), envs[scope], scope,
                                                    used)))
    _warn(graph, used)
    return out


# Arguments that are words, and the words torch.nn.init accepts; every other argument is a number.
WORDS = {"mode": ("fan_in", "fan_out"),
         "nonlinearity": ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                          "conv_transpose2d", "conv_transpose3d", "sigmoid", "tanh", "relu",
                          "leaky_relu", "selu")}
# Schemes that read fan-in/fan-out: a 1-D tensor (a bias, a norm's weight) has none.
FAN_BASED = ("kaiming_normal_", "kaiming_uniform_", "xavier_normal_", "xavier_uniform_")


def _checked(scheme: str, values: dict[str, Any], spans: dict[str, Any], where: Any) -> None:
    """E116 for an argument torch.nn.init would refuse: a word it does not know, a number
    given as text, a negative std, an empty range."""
    for name, value in values.items():
        span = spans.get(name, where)
        allowed = WORDS.get(name)
        if allowed is not None and value not in allowed:
            raise error("E116", f"`{name}` (={show(value)}) is not one torch accepts", span,
                        hint=f"one of: {', '.join(allowed)}")
        if allowed is None and isinstance(value, str | bool):
            raise error("E116", f"`{name}` of `{scheme}` must be a number, got {show(value)}",
                        span, hint="initialisation arguments other than mode and "
                                   "nonlinearity are numbers")
    if values.get("std", 0) < 0:
        raise error("E116", f"`std` (={values['std']}) must not be negative",
                    spans.get("std", where), hint="a standard deviation is 0 or more")
    if "a" in values and "b" in values and not values["a"] < values["b"]:
        raise error("E116", f"the range a={values['a']}, b={values['b']} is empty",
                    spans.get("b", where), hint="a must be below b")


def resolve(rule: ir.InitRule, params: dict[str, Any] | None = None) -> Init:
    """The :class:`Init` of a checked rule; argument expressions may read the network's (or
    the block call's) ``params`` (``std=1 / num_classes``). ``bias=`` is a number, or a
    scheme with positional arguments (``bias=normal(0, 1e-6)``)."""
    func, defaults = SCHEMES[rule.scheme.callee]
    ev = Evaluator(dict(params or {}), None)
    kwargs: dict[str, Any] = {}
    names = list(defaults)
    bias: float | None = None
    bias_func, bias_kwargs = None, ()
    spans: dict[str, Any] = {}
    for i, arg in enumerate(rule.scheme.args):
        name = arg.name or names[i]
        if name == "bias" and isinstance(arg.value, ir.FuncCall):
            bias_func, bias_kwargs = _bias_scheme(arg.value, ev)
            continue
        value = ev(arg.value)
        if not isinstance(value, (int, float, str)) or isinstance(value, bool) or (
                name == "bias" and isinstance(value, str)):
            raise error("E116", f"bad value {show(value)} for `{name}`", arg.span,
                        hint="initialisation arguments are numbers or strings")
        if name == "bias":
            bias = float(value)
        else:
            kwargs[name], spans[name] = value, arg.span
    _checked(rule.scheme.callee, {**defaults, **kwargs}, spans, rule.scheme.span)
    return Init(func, tuple(kwargs.items()), bias, bias_func, bias_kwargs)


def _bias_scheme(call: ir.FuncCall, ev: Evaluator) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """``bias=normal(0, 1e-6)``: the scheme's torch.nn.init function and its arguments, given
    by position."""
    if call.func not in SCHEMES or SCHEMES[call.func][0] is None:
        raise error("E116", f"unknown bias scheme `{call.func}`", call.span,
                    hint="a number, or a scheme: " + ", ".join(k for k, v in SCHEMES.items()
                                                               if v[0] is not None))
    func, defaults = SCHEMES[call.func]
    if len(call.args) > len(defaults):
        raise error("E116", f"`{call.func}` takes {len(defaults)} argument(s)", call.span,
                    hint=f"arguments, by position: {', '.join(defaults) or '(none)'}")
    if func in FAN_BASED:
        raise error("E116", f"`{call.func}` reads fan-in and fan-out, which a bias has not",
                    call.span, hint="a bias takes normal, uniform, trunc_normal, constant, zeros "
                                    "or ones")
    values = [ev(a) for a in call.args]
    for v, a in zip(values, call.args):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise error("E116", f"bad value {show(v)} for `{call.func}`", a.span,
                        hint="a bias scheme's arguments are numbers")
    chosen = dict(zip(defaults, values))
    _checked(call.func, {**defaults, **chosen},
             {n: a.span for n, a in zip(defaults, call.args)}, call.span)
    assert func is not None
    return func, tuple(chosen.items())


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



def _flat_weight(node: OpNode) -> bool:
    """Whether the layer's weight is 1-D (normalisation layers, PReLU's slopes, a learnable
    tensor of one dim), so fan-based schemes fail."""
    from archspec.ops import REGISTRY
    from archspec.ops.base import Category, Ctx, Learned

    op = REGISTRY[node.op]
    call = op.torch(Ctx(node.in_shapes, node.shape, node.attrs))
    if isinstance(call, Learned):  # its factory's first argument is the tensor's shape
        return len(call.factory.args[0]) < 2
    return op.category in (Category.BATCHNORM, Category.GROUPNORM, Category.LAYERNORM,
                           Category.LAYERNORM2D, Category.PRELU)  # tensor primitives: prelu

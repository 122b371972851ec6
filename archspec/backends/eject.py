"""Eject a spec to standalone PyTorch source: one ``nn.Module`` class per block, named like it.

The generated file imports only torch. Its modules sit at the spec's dotted paths, so a
state_dict of the compiled spec (or torchvision's, for the torchvision specs) loads strictly.
A scope (block call or labelled group) becomes:

- ``nn.Sequential(...)`` when it is a plain chain of numbered items (``layer1``, ``features``);
- a class when it has one input from outside and only its output is used outside;
- otherwise a plain ``nn.Module()`` holder whose layers the enclosing forward calls.

Source is written from data only: each class is a :class:`ClassDef` (its members as the ops'
:class:`~archspec.ops.Module` call descriptions or references to other classes, its forward as
:class:`Step` s). Classes equal up to their constant arguments are merged into one class
whose constructor takes the differing constants (``Basic(planes=128)``). Every name the code
invents comes from one :class:`~archspec.backends.naming.Namespace`.
"""

from __future__ import annotations

import ast
import inspect
import keyword
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import torch
from torch import nn

from archspec.backends.naming import Namespace
from archspec.backends.torch import (
    build_module,
    initialised_names,
    lower,
    may_overwrite_input,
    resolve,
)
from archspec.lang import ir
from archspec.lang.diagnostics import ArchspecError
from archspec.lang.expander import expand
from archspec.lang.initializers import Init, block_plans, plan
from archspec.lang.network import Graph
from archspec.lang.plugins import PLUGIN_ROOTS
from archspec.ops import REGISTRY, Ctx, Function, Learned, Module

HELPERS = "archspec.backends.modules."  # targets whose class source the ejected file carries


# --------------------------------------------------------------------------- module tree
@dataclass
class Scope:
    """A node of the module tree: leaf layers and sub-scopes, in graph order."""

    path: str
    kind: str
    members: list[str] = field(default_factory=list)  # child local names, in order
    leaves: dict[str, str] = field(default_factory=dict)  # local name -> node id
    scopes: dict[str, Scope] = field(default_factory=dict)  # local name -> sub-scope


def _parent(node_id: str) -> tuple[str, str]:
    head, _, tail = node_id.rpartition(".")
    return head, tail


def build_tree(graph: Graph) -> Scope:
    """The module hierarchy implied by the dotted node ids."""
    root = Scope("", graph.name)
    index = {"": root}
    for node in graph:
        parent, name = _parent(node.id)
        scope = _ensure(index, parent, graph)
        scope.leaves[name] = node.id
        scope.members.append(name)
    return root


def _ensure(index: dict[str, Scope], path: str, graph: Graph) -> Scope:
    if path in index:
        return index[path]
    parent, name = _parent(path)
    holder = _ensure(index, parent, graph)
    kind = graph.scopes[path].kind if path in graph.scopes else "group"
    scope = index[path] = Scope(path, kind)
    holder.scopes[name] = scope
    holder.members.append(name)
    return scope


# --------------------------------------------------------------------------- classes as data
Value = tuple[str, ...]
"""A value inside a class: ``("", name)`` for a forward argument, else the path of the member
whose call computes it."""


@dataclass(frozen=True)
class Param:
    """A constructor parameter standing where the instances of a merged class differ."""

    label: str


HOLE = Param("")  # where a constant sits in a class's skeleton


@dataclass(frozen=True)
class Ref:
    """Construction of generated class number ``cls`` with keyword arguments."""

    cls: int
    args: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Seq:
    """``nn.Sequential(*items)``."""

    items: tuple[Member, ...]


@dataclass(frozen=True)
class Holder:
    """``nn.Module()`` holding members that the enclosing class's forward calls itself."""

    members: tuple[tuple[str, Member], ...]


Member = Module | Learned | Ref | Seq | Holder


@dataclass(frozen=True)
class Step:
    """One forward statement, ``out = callee(*args)``: ``callee`` is a member path or a
    function; ``hint`` is what the statement's variable is named after. ``learned`` is the
    member path of a learnable tensor passed after ``args`` (:class:`Learned` ops)."""

    out: Value
    hint: str
    callee: tuple[str, ...] | Function
    args: tuple[Value, ...]
    learned: tuple[str, ...] | None = None
    module: Module | None = None


@dataclass(frozen=True)
class InitGroup:
    """One initialisation applied to the layers at ``paths``, in that order."""

    paths: tuple[str, ...]
    init: Init


@dataclass(frozen=True)
class ClassDef:
    """A generated class: its members (attribute label -> what builds it), its forward, its
    result (output name -> value; a single one is returned bare), its constructor parameters
    (label, annotation) and, for the network, its weight initialisation."""

    label: str
    doc: str
    members: tuple[tuple[str, Member], ...]
    inputs: tuple[str, ...]
    forward: tuple[Step, ...]
    result: tuple[tuple[str, Value], ...]
    params: tuple[tuple[str, str], ...] = ()
    inits: tuple[InitGroup, ...] = ()
    defaults: tuple[tuple[str, Any], ...] = ()  # parameter label -> default value


Visit = Callable[[Any, str], Any]  # (constant, the name of the argument it is) -> replacement


@cache
def _positional_names(target: str) -> tuple[str, ...]:
    """The positional parameter names of the class a :class:`Module` target names."""
    try:
        signature = inspect.signature(resolve(target))
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in signature.parameters.values() if p.kind in kinds)


def _map_pairs(pairs: tuple[tuple[str, Any], ...], fn: Visit) -> tuple[tuple[str, Any], ...]:
    return tuple((k, fn(v, k)) for k, v in pairs)


def _map_members(members: tuple[tuple[str, Member], ...],
                 fn: Visit) -> tuple[tuple[str, Member], ...]:
    return tuple((label, map_constants(m, fn)) for label, m in members)


def map_constants(obj: Any, fn: Visit) -> Any:
    """``obj`` (a class or one of its parts) with each constructor argument replaced by
    ``fn(value, name)``, visited in a fixed order. Forward function arguments are structure,
    not constants: the forward cannot see constructor parameters."""
    if isinstance(obj, Module):
        names = _positional_names(obj.target)
        args = tuple(fn(a, names[i] if i < len(names) else f"arg{i}")
                     for i, a in enumerate(obj.args))
        return replace(obj, args=args, kwargs=_map_pairs(obj.kwargs, fn))
    if isinstance(obj, Learned):
        return replace(obj, factory=map_constants(obj.factory, fn))
    if isinstance(obj, Ref):
        return replace(obj, args=_map_pairs(obj.args, fn))
    if isinstance(obj, Seq):
        return Seq(tuple(map_constants(item, fn) for item in obj.items))
    if isinstance(obj, Holder):
        return Holder(_map_members(obj.members, fn))
    if isinstance(obj, ClassDef):
        return replace(obj, members=_map_members(obj.members, fn))
    return obj


def skeleton(cls: ClassDef) -> tuple[ClassDef, list[Any], list[str]]:
    """``cls`` with its constants taken out, the constants, and the argument name of each."""
    values: list[Any] = []
    names: list[str] = []

    def take(value: Any, name: str) -> Param:
        values.append(value)
        names.append(name)
        return HOLE

    return map_constants(cls, take), values, names


def _key(value: Any) -> tuple[str, str]:
    """Equality that tells ``1``, ``1.0`` and ``True`` apart."""
    return type(value).__name__, repr(value)


def _tupled(value: Any) -> Any:
    """Lists as tuples, at any depth: a spec's ``(3, 5)`` is a list until an op takes it."""
    return tuple(map(_tupled, value)) if isinstance(value, (list, tuple)) else value


def _annotation(column: tuple[Any, ...]) -> str:
    names = sorted({"None" if v is None else type(v).__name__ for v in column})
    return "float" if names == ["float", "int"] else " | ".join(names)


NameParam = Callable[[tuple[Any, ...], str, Namespace], str]


def merge(instances: list[ClassDef], name_param: NameParam) -> tuple[ClassDef, list[Ref]]:
    """One class for ``instances`` (equal up to constants), and each instance's constructor
    arguments (``cls`` is left 0). A constant that differs between instances becomes a
    parameter, named by ``name_param(column of values, argument name, namespace)``; equal
    columns share one parameter."""
    shape, _, names = skeleton(instances[0])
    columns = list(zip(*(skeleton(c)[1] for c in instances), strict=True))
    taken = Namespace()
    params: dict[tuple[tuple[str, str], ...], tuple[str, int]] = {}  # column -> label, index
    fill: list[Any] = []
    for i, (column, name) in enumerate(zip(columns, names, strict=True)):
        keys = tuple(_key(v) for v in column)
        if len(set(keys)) == 1:
            fill.append(column[0])
            continue
        if keys not in params:
            params[keys] = (name_param(column, name, taken), i)
        fill.append(Param(params[keys][0]))
    filled = iter(fill)
    merged = replace(map_constants(shape, lambda value, name: next(filled)),
                     params=tuple((label, _annotation(columns[i])) for label, i in
                                  params.values()))
    refs = [Ref(0, tuple((label, columns[i][n]) for label, i in params.values()))
            for n in range(len(instances))]
    return merged, refs


# --------------------------------------------------------------------------- graph -> data
_DETERMINISTIC = frozenset({None, "constant_", "zeros_", "ones_"})  # draw no random numbers


def init_groups(layers: list[tuple[str, Init]]) -> tuple[InitGroup, ...]:
    """Layers grouped by initialisation so that random draws keep the given order: successive
    random layers with the same init share a group; a deterministic init is one group."""
    groups: list[tuple[Init, list[str]]] = []
    fixed: dict[Init, list[str]] = {}
    last: tuple[Init, list[str]] | None = None
    for path, init in layers:
        if init.func in _DETERMINISTIC and init.bias_func is None:
            if init not in fixed:
                fixed[init] = []
                groups.append((init, fixed[init]))
            fixed[init].append(path)
        elif last is not None and last[0] == init:
            last[1].append(path)
        else:
            last = (init, [path])
            groups.append(last)
    return tuple(InitGroup(tuple(paths), init) for init, paths in groups)


class Ejector:
    """Turns an expanded graph into merged :class:`ClassDef` s, the network's last."""

    def __init__(self, graph: Graph, inits: tuple[ir.InitRule, ...] = ()) -> None:
        self.graph = graph
        self.init_rules = inits
        readers = graph.consumers()
        self.position = {node_id: i for i, node_id in enumerate(graph.nodes)}
        self.lowered = {n.id: lower(n, may_overwrite_input(graph, n, readers)) for n in graph}
        self.readers = readers
        self.tree = build_tree(graph)
        self._boundary: dict[str, tuple[list[str], set[str]]] = {}
        self._form: dict[str, str] = {}
        self.refs: dict[str, Ref] = {}  # scope path -> construction of its class
        self.classes: list[ClassDef] = []
        self.first: list[int] = []  # per class: post-order position of its first instance

    # ------------------------------------------------------------ analysis of scopes
    def node_ids(self, scope: Scope) -> list[str]:
        """The ids of every layer inside ``scope``."""
        out = list(scope.leaves.values())
        for sub in scope.scopes.values():
            out += self.node_ids(sub)
        return out

    def boundary(self, scope: Scope) -> tuple[list[str], set[str]]:
        """External inputs (in first-use order) and the values used outside the scope."""
        if scope.path not in self._boundary:
            inside = sorted(self.node_ids(scope), key=self.position.__getitem__)
            members = set(inside)
            ins: list[str] = []
            for node_id in inside:
                ins += [s for s in self.graph.nodes[node_id].inputs
                        if s not in members and s not in ins]
            outs = {v for v in inside if v in self.graph.outputs.values()
                    or any(r not in members for r in self.readers[v])}
            self._boundary[scope.path] = ins, outs
        return self._boundary[scope.path]

    def is_unit(self, scope: Scope) -> bool:
        """One input from outside, one value used outside."""
        ins, outs = self.boundary(scope)
        return len(ins) == 1 and len(outs) == 1

    def is_chain(self, scope: Scope) -> bool:
        """Numbered members, each reading the previous one's output alone."""
        if scope.members != [str(i) for i in range(len(scope.members))]:
            return False
        prev = self.boundary(scope)[0][0]
        for name in scope.members:
            if name in scope.leaves:
                node = self.graph.nodes[scope.leaves[name]]
                call = self.lowered[node.id]
                if not (isinstance(call, Module) and call.plain) or node.inputs != (prev,):
                    return False
                prev = node.id
            else:
                sub = scope.scopes[name]
                if not self.is_unit(sub) or self.boundary(sub)[0] != [prev]:
                    return False
                prev = next(iter(self.boundary(sub)[1]))
        return True

    def form(self, scope: Scope) -> str:
        """``seq``, ``class`` or ``holder``: how ``scope`` is built."""
        if scope.path not in self._form:
            self._form[scope.path] = ("holder" if not self.is_unit(scope) else
                                      "seq" if self.is_chain(scope) else "class")
        return self._form[scope.path]

    def class_scopes(self, scope: Scope) -> Iterator[Scope]:
        """The nearest sub-scopes that are classes (looking through holders and chains)."""
        for sub in scope.scopes.values():
            if self.form(sub) == "class":
                yield sub
            else:
                yield from self.class_scopes(sub)

    def height(self, scope: Scope) -> int:
        """0 for a class that uses no other class, else one more than its highest one."""
        return 1 + max((self.height(sub) for sub in self.class_scopes(scope)), default=-1)

    def post_order(self, scope: Scope) -> Iterator[Scope]:
        """Every class scope under ``scope``, then ``scope`` itself."""
        for sub in self.class_scopes(scope):
            yield from self.post_order(sub)
        yield scope

    # ------------------------------------------------------------ data of one scope
    def members(self, scope: Scope) -> tuple[tuple[str, Member], ...]:
        """The modules ``scope`` holds, by label (function layers hold none)."""
        out: list[tuple[str, Member]] = []
        for name in scope.members:
            if name in scope.scopes:
                out.append((name, self.member(scope.scopes[name])))
            elif isinstance(call := self.lowered[scope.leaves[name]], Module | Learned):
                out.append((name, call))
        return tuple(out)

    def member(self, scope: Scope) -> Member:
        """What builds sub-scope ``scope``."""
        form = self.form(scope)
        if form == "seq":
            return Seq(tuple(m for _, m in self.members(scope)))
        if form == "class":
            return self.refs[scope.path]
        return Holder(self.members(scope))

    def steps(self, scope: Scope, values: dict[str, Value], prefix: Value) -> list[Step]:
        """The forward statements of ``scope``'s layers (a holder's are inlined)."""
        out: list[Step] = []
        for name in scope.members:
            path = (*prefix, name)
            if name in scope.leaves:
                node = self.graph.nodes[scope.leaves[name]]
                call = self.lowered[node.id]
                args = tuple(values[i] for i in node.inputs)
                hint = name if name[:1].isalpha() else node.op
                if isinstance(call, Learned):
                    out.append(Step(path, hint, call.combine, args, learned=path))
                elif isinstance(call, Module):
                    out.append(Step(path, hint, path, args,
                                    module=None if call.plain else call))
                else:
                    out.append(Step(path, hint, call, args))
                values[node.id] = path
                continue
            sub = scope.scopes[name]
            if self.form(sub) == "holder":
                out += self.steps(sub, values, path)
                continue
            (src,), outs = self.boundary(sub)
            hint = name if name[:1].isalpha() else sub.kind
            out.append(Step(path, hint, path, (values[src],)))
            values[next(iter(outs))] = path
        return out

    def class_def(self, scope: Scope) -> ClassDef:
        """``scope`` as a class (the network for the root)."""
        if scope.path == "":
            return self.network_def(scope)
        (src,), (out,) = self.boundary(scope)
        values: dict[str, Value] = {src: ("", "x")}
        steps = tuple(self.steps(scope, values, ()))
        label = scope.kind if scope.kind != "group" else _parent(scope.path)[1]
        doc = (f"The `{label}` group of `{self.graph.name}`." if scope.kind == "group"
               else f"Block `{scope.kind}`.")
        return ClassDef(label, doc, self.members(scope), ("x",), steps, (("", values[out]),))

    def network_def(self, root: Scope) -> ClassDef:
        """The network's class: the graph's inputs, outputs and weight initialisation."""
        values: dict[str, Value] = {name: ("", name) for name in self.graph.inputs}
        steps = tuple(self.steps(root, values, ()))
        result = tuple((name, values[v]) for name, v in self.graph.outputs.items())
        return ClassDef(self.graph.name, f"Network `{self.graph.name}`, generated by archspec.",
                        self.members(root), tuple(self.graph.inputs), steps, result,
                        inits=self.inits())

    def has_weights(self, node_id: str) -> bool:
        """Whether the layer is a module with parameters (what an init rule can set)."""
        node = self.graph.nodes[node_id]
        cost = REGISTRY[node.op].cost(Ctx(node.in_shapes, node.shape, node.attrs))
        return isinstance(self.lowered[node_id], Module) and cost.params > 0

    def inits(self) -> tuple[InitGroup, ...]:
        """The blocks' ``init`` rules (as each call completes), then the network's, as
        :mod:`archspec.lang.initializers` resolves them. The network's constructor applies them all
        once every layer exists, so the same seed draws other numbers than `compile`'s build,
        where a block initialises its layers as soon as it is built."""
        planned = [*(item for block in block_plans(self.graph)
                     for item in block.layers.items()),
                   *plan(self.graph, self.init_rules).items()]
        layers = [(path, init) for node_id, init in planned if self.has_weights(node_id)
                  and (init.func is not None or init.bias is not None
                       or init.bias_func is not None) for path in self.initialised(node_id)]
        return init_groups(layers)

    def initialised(self, node_id: str) -> list[str]:
        """The module paths an init rule on the layer sets: the layer's own, or a composite
        op's inner linear layers (:func:`initialised_names`, on a meta-device build)."""
        with torch.device("meta"):
            names = initialised_names(build_module(self.lowered[node_id]))
        return [f"{node_id}.{name}" if name else node_id for name in names]

    # ------------------------------------------------------------ merging
    def run(self) -> list[ClassDef]:
        """Every class, merged, in an order where each comes after the classes it uses."""
        levels: dict[int, list[tuple[int, Scope]]] = {}
        for position, scope in enumerate(self.post_order(self.tree)):
            levels.setdefault(self.height(scope), []).append((position, scope))
        for height in sorted(levels):
            groups: dict[ClassDef, list[tuple[int, Scope, ClassDef]]] = {}
            for position, scope in levels[height]:
                cls = self.class_def(scope)
                groups.setdefault(skeleton(cls)[0], []).append((position, scope, cls))
            for group in groups.values():
                self.add_class(group)
        order = sorted(range(len(self.classes)), key=self.first.__getitem__)
        renumber = {old: new for new, old in enumerate(order)}
        return [_renumber(self.classes[old], renumber) for old in order]

    def add_class(self, group: list[tuple[int, Scope, ClassDef]]) -> None:
        """Merge one group of classes equal up to constants; its scopes refer to the result."""
        scopes = [scope for _, scope, _ in group]

        def name_param(column: tuple[Any, ...], name: str, taken: Namespace) -> str:
            return taken.name(self.param_label(scopes, column, taken) or name)

        cls, refs = merge([c for _, _, c in group], name_param)
        index = len(self.classes)
        self.classes.append(cls)
        self.first.append(group[0][0])
        for scope, ref in zip(scopes, refs, strict=True):
            self.refs[scope.path] = replace(ref, cls=index)

    def param_label(self, scopes: list[Scope], column: tuple[Any, ...],
                    taken: Namespace) -> str | None:
        """The block parameter equal to ``column`` in every instance, else ``in_channels``
        when it equals the instances' input channels, else None."""
        keys = [_key(v) for v in column]
        calls = [self.graph.scopes.get(s.path) for s in scopes]
        if all(c is not None for c in calls):
            for name in calls[0].args:
                if name not in taken and \
                        keys == [_key(_tupled(c.args.get(name))) for c in calls]:
                    return name
        channels = [self.graph.shape_of(self.boundary(s)[0][0])[:1] for s in scopes]
        if "in_channels" not in taken and all(len(c) == 1 for c in channels) and \
                keys == [_key(c[0]) for c in channels]:
            return "in_channels"
        return None


def _renumber(obj: Any, renumber: dict[int, int]) -> Any:
    """``obj`` with its class references renumbered."""
    if isinstance(obj, Ref):
        return replace(obj, cls=renumber[obj.cls])
    if isinstance(obj, Seq):
        return Seq(tuple(_renumber(item, renumber) for item in obj.items))
    if isinstance(obj, Holder):
        return Holder(tuple((label, _renumber(m, renumber)) for label, m in obj.members))
    if isinstance(obj, ClassDef):
        return replace(obj, members=_renumber(Holder(obj.members), renumber).members)
    return obj


# --------------------------------------------------------------------------- data -> source
def literal(value: Any) -> str:
    """Source of a constant: ``repr`` of a Python literal (int, float, bool, str, None, tuple,
    list); anything else, or a value whose ``repr`` does not read back, is an error."""
    text = repr(value)
    try:
        back = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        back = None
    if type(back) is not type(value) or back != value:
        raise ValueError(f"cannot write {text} as a Python literal")
    return text


def qualified_source(target: str) -> str:
    """How generated code names a qualified target: ``torch.nn.Conv2d`` -> ``nn.Conv2d``."""
    if target.startswith("torch.nn.") and target.count(".") == 2:
        return "nn." + target.rsplit(".", 1)[1]
    if carried(target) or target.startswith("builtins."):
        return target.rsplit(".", 1)[1]
    if target.startswith("operator."):
        raise ValueError(f"no source for {target!r}: write it as an operator")
    return target


WIDTH = 100  # generated lines stay within this, where a line can be broken


def wrap_call(head: str, args: list[str], start: int = 0, tail: int = 0,
              brackets: str = "()") -> str:
    """``head(arg, ...)`` written from column ``start`` with ``tail`` characters after it: on
    one line when that fits in :data:`WIDTH`, else with the arguments packed on lines aligned
    after the opening bracket (each leaving room for the tail)."""
    opening, closing = brackets
    flat = f"{head}{opening}{', '.join(args)}{closing}"
    if start + len(flat) + tail <= WIDTH:
        return flat
    column = start + len(head) + 1
    rows: list[list[str]] = [[]]
    for arg in args:
        if rows[-1] and column + len(", ".join([*rows[-1], arg])) + 1 + tail > WIDTH:
            rows.append([])
        rows[-1].append(arg)
    joint = ",\n" + " " * column
    return f"{head}{opening}{joint.join(', '.join(row) for row in rows)}{closing}"


def module_source(call: Module, value: Callable[[Any], str] = literal, start: int = 0,
                  tail: int = 0) -> str:
    """``nn.Conv2d(3, 64, 7, stride=2)``: the constructor call a :class:`Module` describes;
    ``value`` writes each argument (``start``, ``tail``: as for :func:`wrap_call`)."""
    args = [value(a) for a in call.args] + [f"{k}={value(v)}" for k, v in call.kwargs]
    return wrap_call(qualified_source(call.target), args, start, tail)


def special_call(member: str, args: list[str], call: Module, start: int) -> str:
    """``self.attn(x, x, x, need_weights=False)[0]``: a module call with repeated inputs,
    keyword arguments or one item of its results (:class:`Module` ``repeat``/``call``/``item``)."""
    pieces = args * call.repeat + [f"{k}={literal(v)}" for k, v in call.call]
    suffix = "" if call.item is None else f"[{call.item}]"
    return wrap_call(member, pieces, start, len(suffix)) + suffix


_OPERATORS = {"operator.add": "+", "operator.mul": "*"}
_INPLACE = {"operator.iadd": "add_", "operator.imul": "mul_"}


def function_source(call: Function, args: list[str], start: int = 0) -> str:
    """The expression a :class:`Function` computes on the variables ``args``, from column
    ``start``."""
    if call.target in _OPERATORS:
        return f" {_OPERATORS[call.target]} ".join(args)
    if call.target in _INPLACE:
        return f"{args[0]}.{_INPLACE[call.target]}({args[1]})"
    head = qualified_source(call.target)
    kwargs = [f"{k}={literal(v)}" for k, v in call.kwargs]
    if not call.as_list:
        return wrap_call(head, [*args, *kwargs], start)
    rest = "".join(f", {k}" for k in kwargs) + ")"
    items = wrap_call("", args, start + len(head) + 1, len(rest), "[]")
    return f"{head}({items}{rest}"


def _escaped(char: str) -> str:
    """One character of docstring text as source: a quote or a backslash escaped, anything
    not printable (a line break, U+2028, NUL) as its ``\\x``/``\\u`` escape."""
    if char in '"\\':
        return "\\" + char
    return char if char.isprintable() else char.encode("unicode_escape").decode("ascii")


def docstring(lines: list[str], indent: int = 0) -> list[str]:
    """The source lines of a docstring holding ``lines`` (text with names from the spec),
    indented by ``indent``: the one escape for generated docstrings, so that no name can end
    the string or break its line."""
    body = ["".join(map(_escaped, line)) for line in lines]
    body[0] = '"""' + body[0]
    body[-1] += '"""'
    return [" " * indent + line if line else line for line in body]


_MODULE_ATTRS = frozenset(dir(nn.Module()))


def _plain(label: str) -> bool:
    """Whether ``label`` can follow a dot: an ASCII identifier (Python reads a non-ASCII one
    as its NFKC form, so ``self.\ufb01`` would be ``self.fi``) that is no keyword and no
    ``nn.Module`` attribute."""
    return (label.isascii() and label.isidentifier() and not keyword.iskeyword(label)
            and label not in _MODULE_ATTRS)


def attribute(base: str, label: str) -> str:
    """How generated code reads submodule ``label`` of ``base``: ``self.conv1``,
    ``getattr(self, 'block1-0')``, or ``self._modules['forward']`` for a label that
    ``nn.Module`` itself uses."""
    if _plain(label):
        return f"{base}.{label}"
    if label in _MODULE_ATTRS:
        return f"{base}._modules[{label!r}]"
    return f"getattr({base}, {label!r})"


def assignment(base: str, label: str, parameter: bool = False) -> tuple[str, str]:
    """What goes before and after a module's (or a ``parameter``'s) source to register it as
    ``label`` of ``base``: ``self.conv1 = ...``, ``self.add_module('block1-0', ...)``."""
    if _plain(label):
        return f"{base}.{label} = ", ""
    if parameter:
        return f"{base}.register_parameter({label!r}, ", ")"
    if label in _MODULE_ATTRS:
        return f"{base}._modules[{label!r}] = ", ""
    return f"{base}.add_module({label!r}, ", ")"


def packed(items: list[str], indent: int) -> list[str]:
    """``items``, each followed by a comma, over as few lines within :data:`WIDTH` as fit."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + len(item) + 2 <= WIDTH:
            lines[-1] += f" {item},"
        else:
            lines.append(f"{' ' * indent}{item},")
    return lines


def init_calls(layer: str, init: Init, indent: int) -> list[str]:
    """The ``torch.nn.init`` statements applying ``init`` to the module ``layer``."""
    pad = " " * indent
    out = []
    if init.func is not None:
        args = [f"{layer}.weight", *(f"{k}={literal(v)}" for k, v in init.kwargs)]
        out.append(pad + wrap_call(f"nn.init.{init.func}", args, indent))
    if init.bias is not None:
        args = [f"{layer}.bias", literal(init.bias)]
        out += [f"{pad}if {layer}.bias is not None:",
                f"{pad}    {wrap_call('nn.init.constant_', args, indent + 4)}"]
    elif init.bias_func is not None:
        args = [f"{layer}.bias", *(f"{k}={literal(v)}" for k, v in init.bias_kwargs)]
        out += [f"{pad}if {layer}.bias is not None:",
                f"{pad}    {wrap_call(f'nn.init.{init.bias_func}', args, indent + 4)}"]
    return out


class Writer:
    """Writes merged classes as source; helper class names are taken first. Lines come with
    their indentation (classes are at the top level)."""

    def __init__(self, classes: list[ClassDef], helpers: tuple[str, ...] = ()) -> None:
        self.classes = classes
        self.names = Namespace(taken=(*helpers, "build"))
        last = len(classes) - 1
        self.class_names = [self.names.class_name(c.label, "Network" if i == last else "Group")
                            for i, c in enumerate(classes)]
        self.params = [self._param_names(c) for c in classes]

    def _param_names(self, cls: ClassDef) -> dict[str, str]:
        scope = self.names.child()
        return {label: scope.name(label) for label, _ in cls.params}

    def source(self, member: Member, value: Callable[[Any], str], start: int, indent: int,
               tail: int = 0) -> str:
        """The expression building ``member`` from column ``start`` of a line indented by
        ``indent``, with ``tail`` characters after it (holders are built by statements)."""
        if isinstance(member, Module | Learned):
            call = member.factory if isinstance(member, Learned) else member
            return module_source(call, value, start, tail)
        if isinstance(member, Seq):
            items = [self.source(m, value, indent + 4, indent + 4, 1) for m in member.items]
            flat = f"nn.Sequential({', '.join(items)})"
            if "\n" not in flat and start + len(flat) + tail <= WIDTH:
                return flat
            pad = " " * (indent + 4)
            return "".join(["nn.Sequential(\n", *(f"{pad}{item},\n" for item in items),
                            " " * indent, ")"])
        assert isinstance(member, Ref)
        names = self.params[member.cls]
        args = [f"{names[label]}={value(v)}" for label, v in member.args]
        return wrap_call(self.class_names[member.cls], args, start, tail)

    def member_lines(self, base: str, members: tuple[tuple[str, Member], ...],
                     value: Callable[[Any], str], indent: int) -> list[str]:
        """Statements registering ``members`` under ``base``."""
        out = []
        for label, member in members:
            before, after = assignment(base, label, isinstance(member, Learned))
            if isinstance(member, Holder):
                out.append(f"{' ' * indent}{before}nn.Module(){after}")
                out += self.member_lines(attribute(base, label), member.members, value, indent)
                continue
            source = self.source(member, value, indent + len(before), indent, len(after))
            out.append(f"{' ' * indent}{before}{source}{after}")
        return out

    def init_lines(self, groups: tuple[InitGroup, ...], scope: Namespace,
                   indent: int) -> list[str]:
        """The network's weight initialisation: one ``for`` per group of layers."""
        if not groups:
            return []
        layers, path, pad = scope.name("layers"), scope.name("path"), " " * indent
        out = [f"{pad}with torch.no_grad():  # the spec's `init` rules, in layer order",
               f"{pad}    {layers} = dict(self.named_modules())"]
        for group in groups:
            if len(group.paths) == 1:
                out += init_calls(f"{layers}[{group.paths[0]!r}]", group.init, indent + 4)
                continue
            out += [f"{pad}    for {path} in (", *packed([repr(p) for p in group.paths],
                                                         indent + 8), f"{pad}    ):",
                    *init_calls(f"{layers}[{path}]", group.init, indent + 8)]
        return out

    def forward_lines(self, cls: ClassDef) -> list[str]:
        """The ``forward`` method: one statement per step."""
        scope = self.names.child()
        names: dict[Value, str] = {("", label): scope.name(label) for label in cls.inputs}
        inputs = ["self", *(names["", label] for label in cls.inputs)]
        out = [f"    {wrap_call('def forward', inputs, 4, 1)}:"]
        for step in cls.forward:
            args = [names[v] for v in step.args]
            if step.learned is not None:
                args.append(_attr_path(step.learned))
            names[step.out] = scope.name(step.hint)
            start = 8 + len(names[step.out]) + 3
            if isinstance(step.callee, Function):
                expression = function_source(step.callee, args, start)
            elif step.module is not None:
                expression = special_call(_attr_path(step.callee), args, step.module, start)
            else:
                expression = wrap_call(_attr_path(step.callee), args, start)
            out.append(f"        {names[step.out]} = {expression}")
        if len(cls.result) == 1:
            out.append(f"        return {names[cls.result[0][1]]}")
        else:
            items = ", ".join(f"{name!r}: {names[v]}" for name, v in cls.result)
            out.append(f"        return {{{items}}}")
        return out

    def class_lines(self, index: int) -> list[str]:
        """The source of class ``index``."""
        cls, params = self.classes[index], self.params[index]

        def value(v: Any) -> str:
            return params[v.label] if isinstance(v, Param) else literal(v)

        scope = self.names.child()
        scope.taken.update(params.values())
        defaults = dict(cls.defaults)
        signature = ["self", *(f"{params[label]}: {note}" + (
            f" = {literal(defaults[label])}" if label in defaults else "")
            for label, note in cls.params)]
        return [f"class {self.class_names[index]}(nn.Module):", *docstring([cls.doc], 4), "",
                f"    {wrap_call('def __init__', signature, 4, 9)} -> None:",
                "        super().__init__()",
                *self.member_lines("self", cls.members, value, 8),
                *self.init_lines(cls.inits, scope, 8), "", *self.forward_lines(cls)]


def _attr_path(path: tuple[str, ...]) -> str:
    out = "self"
    for label in path:
        out = attribute(out, label)
    return out


def helper_targets(calls: list[Module | Function | Learned]) -> list[str]:
    """The targets, in first-use order, whose source the ejected file carries; a helper that
    builds other helpers (its ``requires``: their class names) comes after them."""
    flat = [part for c in calls
            for part in ((c.factory, c.combine) if isinstance(c, Learned) else (c,))]
    targets = [c.target for c in flat if carried(c.target)]
    return list(dict.fromkeys(needed for target in targets for needed in (
        *(f"{target.rpartition('.')[0]}.{name}"
          for name in getattr(resolve(target), "requires", ())), target)))


def carried(target: str) -> bool:
    """Whether the ejected file carries the source of ``target``'s class: archspec's helpers
    and the classes of plugin packages (which, like the helpers, use nothing but torch)."""
    return target.startswith(HELPERS) or target.split(".")[0] in PLUGIN_ROOTS


# Network parameters probed for constructor arguments (each probe builds the network again):
# beyond this many, the rest keep the spec's values, so that eject time stays bounded.
MAX_PROBED_PARAMS = 16


def _probes(value: Any) -> tuple[Any, ...]:
    """Other values to try for a network parameter whose value is ``value``: nearby numbers
    (a bool, string or list is not probed: it rarely only changes layer arguments)."""
    if isinstance(value, bool):
        return ()
    if isinstance(value, int):
        return (value + 1, value + 2)
    if isinstance(value, float):
        return (value / 2, (value + 1) / 2) if value else (0.5,)
    return ()


def _probe(spec: ir.Spec, name: str, value: Any) -> list[ClassDef] | None:
    """The classes of ``spec`` with parameter ``name`` set to ``value``, or None when that
    value is not valid for the spec."""
    from archspec.lang.syntax.loader import with_overrides

    try:
        probed = with_overrides(spec, {name: value})
        return Ejector(expand(probed), probed.inits).run()
    except ArchspecError:
        return None


Slots = dict[tuple[int, int], str]  # (class index, constant position) -> network parameter


def parameter_slots(spec: ir.Spec, graph: Graph, classes: list[ClassDef]) -> Slots:
    """Network parameters that only change constructor arguments: (class index, position in
    :func:`skeleton` order) -> parameter name.

    A parameter qualifies when the spec, built again with another value of it, gives the same
    classes up to constants, and each constant that changed equals the parameter's value in
    both builds (``linear(num_classes)``, an inferred ``in_channels`` equal to a ``channels``
    parameter), in the network class or in classes only the network class builds. Anything
    else (a repeat count, a width scaled by a factor, a value inside a class other classes
    build) keeps the spec's value in the code, as do the parameters after the first
    :data:`MAX_PROBED_PARAMS` numbers."""
    slots: Slots = {}
    numbers = [(n, v) for n, v in graph.params.items() if _probes(v)]
    for name, value in numbers[:MAX_PROBED_PARAMS]:
        for probe in _probes(value):
            other = _probe(spec, name, probe)
            if other is None:
                continue
            found = _changed(classes, other, (value, probe))
            if found and not set(found) & set(slots) and _reachable(classes, found, name):
                slots.update(dict.fromkeys(found, name))
            break
    return slots


def _changed(classes: list[ClassDef], other: list[ClassDef],
             pair: tuple[Any, Any]) -> list[tuple[int, int]]:
    """(class, position) of the constants that went from ``pair[0]`` to ``pair[1]``; none
    when anything else differs between ``classes`` and ``other``."""
    if len(classes) != len(other):
        return []
    before, after = _key(pair[0]), _key(pair[1])
    found = []
    for index, (mine, theirs) in enumerate(zip(classes, other, strict=True)):
        shape, values, _ = skeleton(mine)
        other_shape, other_values, _ = skeleton(theirs)
        if shape != other_shape:
            return []
        for i, (a, b) in enumerate(zip(values, other_values, strict=True)):
            if _key(a) == _key(b):
                continue
            if (_key(_tupled(a)), _key(_tupled(b))) != (before, after):
                return []
            found.append((index, i))
    return found


def _refs(obj: Any) -> Iterator[int]:
    """The class numbers ``obj`` (a class or one of its members) builds directly."""
    if isinstance(obj, Ref):
        yield obj.cls
    elif isinstance(obj, Seq):
        for item in obj.items:
            yield from _refs(item)
    elif isinstance(obj, Holder | ClassDef):
        for _, member in obj.members:
            yield from _refs(member)


def _reachable(classes: list[ClassDef], found: list[tuple[int, int]], name: str) -> bool:
    """Whether the network class can pass parameter ``name`` to every class in ``found``:
    only it builds them, and ``name`` is not already one of their parameters."""
    last = len(classes) - 1
    inner = {c for c, _ in found if c != last}
    built_elsewhere = {r for c in classes[:-1] for r in _refs(c)}
    return not inner & built_elsewhere and all(
        name not in dict(classes[c].params) for c in inner)


def _fill(cls: ClassDef, slots: dict[int, str]) -> ClassDef:
    """``cls`` with the constants at ``slots`` replaced by parameters of those names."""
    shape, values, _ = skeleton(cls)
    filled = iter([Param(slots[i]) if i in slots else v for i, v in enumerate(values)])
    return replace(shape, members=map_constants(shape, lambda v, n: next(filled)).members)


def _pass(obj: Any, cls: int, names: list[str]) -> Any:
    """``obj`` with each construction of class ``cls`` passing ``names`` on as arguments."""
    if isinstance(obj, Ref) and obj.cls == cls:
        return replace(obj, args=(*obj.args, *((n, Param(n)) for n in names)))
    if isinstance(obj, Seq):
        return Seq(tuple(_pass(item, cls, names) for item in obj.items))
    if isinstance(obj, Holder):
        return Holder(tuple((label, _pass(m, cls, names)) for label, m in obj.members))
    return obj


def with_network_params(spec: ir.Spec, graph: Graph,
                        classes: list[ClassDef]) -> list[ClassDef]:
    """``classes`` with the parameters of :func:`parameter_slots` as constructor arguments:
    the network class's with the spec's values as defaults, the classes it builds receiving
    them from it."""
    slots = parameter_slots(spec, graph, classes)
    if not slots:
        return classes
    out = list(classes)
    last = len(out) - 1
    # The network's own constants first: passing arguments on adds constants to it.
    for index in sorted({c for c, _ in slots}, key=lambda c: c != last):
        names = {i: n for (c, i), n in slots.items() if c == index}
        out[index] = _fill(out[index], names)
        if index == last:
            continue
        order = [n for n in graph.params if n in names.values()]
        out[index] = replace(out[index], params=(*out[index].params, *(
            (n, _annotation((graph.params[n],))) for n in order)))
        out[last] = replace(out[last],
                            members=_pass(Holder(out[last].members), index, order).members)
    names = [n for n in graph.params if n in slots.values()]
    out[last] = replace(out[last], params=tuple(
        (n, _annotation((graph.params[n],))) for n in names),
        defaults=tuple((n, graph.params[n]) for n in names))
    return out


def eject(spec: ir.Spec) -> str:
    """Standalone PyTorch source for ``spec``; its last class is the network. The spec's file
    name is not written: only names the spec gives, each as an identifier, a ``repr`` or
    escaped text in a docstring."""
    graph = expand(spec)
    ej = Ejector(graph, spec.inits)
    classes = ej.run()
    classes = with_network_params(spec, graph, classes)
    helpers = helper_targets(list(ej.lowered.values()))
    writer = Writer(classes, tuple(t.rsplit(".", 1)[1] for t in helpers))
    network = writer.class_names[-1]
    inputs = ", ".join(f"{k} {list(v)}" for k, v in graph.inputs.items())
    head = [*docstring([f"Network `{graph.name}`, generated by archspec.", "",
                        f"Standalone: imports only torch. Inputs (per sample): {inputs}."]),
            "", "import torch", "from torch import nn", ""]
    blocks = [inspect.getsource(resolve(t)).rstrip() for t in helpers]
    blocks += ["\n".join(writer.class_lines(i)) for i in range(len(classes))]
    tail = [f"def build() -> {network}:", *docstring([f"A new `{graph.name}` network."], 4),
            f"    return {network}()"]
    return "\n".join(head) + "\n\n" + "\n\n\n".join([*blocks, "\n".join(tail)]) + "\n"

"""Folding: a :class:`FlatGraph` -> the spec a person would write (``lang.ir.Spec``).

1. The module scopes of the nodes form a tree. A scope read through one value and read from
   through one value becomes one statement: a labelled group, or a call of a block.
2. Inside a scope, adds and concats whose inputs fork from one value become ``residual`` and
   ``concat`` (units.py); everything else is a chain, or the DAG form where it must be.
3. Scopes of one module class whose statements are equal up to attribute values (a canonical
   skeleton, hashed: near-linear) are one ``block``; what differs becomes its parameters,
   named and derived from each other and from ``in`` where that is exact (blocks.py).
4. Runs of equal block calls become ``repeat`` (blocks.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from archspec.importers import blocks
from archspec.importers.flat import CONTAINERS, FlatGraph, FlatNode
from archspec.importers.units import Finder, Unit, stmt_of
from archspec.lang import ir
from archspec.ops import REGISTRY

#: a label a DAG input can name as it is (``conv1``, ``denselayer2.conv1``)
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")


@dataclass
class Scope:
    """A module scope: its path, class name and items (nodes and sub-scopes) in order."""

    path: str
    cls: str
    items: list[Any] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)


def scope_tree(graph: FlatGraph) -> Scope:
    """The scope tree of ``graph``'s nodes."""
    root = Scope("", "")
    index: dict[str, Scope] = {"": root}
    for node in graph.nodes:
        parent = root
        root.ids.add(node.id)
        for path, cls in node.scope:
            child = index.get(path)
            if child is None:
                child = index[path] = Scope(path, cls)
                parent.items.append(child)
            child.ids.add(node.id)
            parent = child
        parent.items.append(node)
    return root


def value(v: Any) -> Any:
    """A Python attribute value as an IR expression."""
    if isinstance(v, tuple | list):
        return ir.ListExpr(items=tuple(value(x) for x in v), tuple_=isinstance(v, tuple))
    return ir.Lit(value=v)


def call_of(node: FlatNode) -> ir.LayerCall:
    """``op(required..., name=value...)``: required attributes by position, others by name."""
    op = REGISTRY[node.op]
    args = []
    for name, info in op.attrs.model_fields.items():
        v = node.attrs.get(name, info.default)
        if name == "index" and op.outputs is not None or not isinstance(
                v, int | float | bool | str | tuple | list | type(None)):
            continue
        args.append(ir.Arg(name=None if info.is_required() else name, value=value(v)))
    args.sort(key=lambda a: a.name is not None)
    return ir.LayerCall(callee=op.name, args=tuple(args))


def relative(path: str, base: str) -> str:
    """``layer1.0.conv1`` relative to ``layer1.0``: ``conv1``."""
    return path[len(base) + 1:] if base and path.startswith(base + ".") else path


class Folder:
    """Lowers a scope tree into IR, collecting the instances of would-be blocks."""

    def __init__(self, graph: FlatGraph, plan: blocks.Plan | None) -> None:
        self.graph = graph
        self.plan = plan
        self.nodes = {n.id: n for n in graph.nodes}
        self.readers: dict[str, set[str]] = {}
        for n in graph.nodes:
            for v in n.inputs:
                self.readers.setdefault(v, set()).add(n.id)
        self.calls: dict[str, int] = {}
        for n in graph.nodes:
            if n.module:
                self.calls[n.module] = self.calls.get(n.module, 0) + 1
        self.instances: list[blocks.Instance] = []
        self.by_path: dict[str, int] = {}
        self.position = {n.id: i for i, n in enumerate(graph.nodes)}

    def shape(self, v: str) -> tuple[int, ...]:
        return self.nodes[v].shape if v in self.nodes else self.graph.inputs[v]

    def boundary(self, scope: Scope) -> tuple[list[str], list[str]]:
        """The values ``scope`` reads from outside and those read after it."""
        ins: list[str] = []
        outs: list[str] = []
        for i in sorted(scope.ids, key=self.position.__getitem__):
            for v in self.nodes[i].inputs:
                if v not in scope.ids and v not in ins:
                    ins.append(v)
            if self.readers.get(i, set()) - scope.ids or i == self.graph.output \
                    or i in self.graph.outputs.values():
                outs.append(i)
        return ins, outs

    def node_unit(self, node: FlatNode, base: str) -> Unit:
        label = None
        if node.module and (node.stateful or self.calls[node.module] == 1):
            label = relative(node.module, base)
        return Unit(list(node.inputs), node.id, call_of(node), label, node.op,
                    keyed=node.stateful)

    def units(self, scope: Scope, base: str) -> list[Unit]:
        """The units of ``scope``'s items, labels relative to ``base``; a child scope that is
        not one-in one-out is spliced in, its items labelled by their relative paths."""
        out: list[Unit] = []
        for item in scope.items:
            if isinstance(item, FlatNode):
                out.append(self.node_unit(item, base))
                continue
            ins, outs = self.boundary(item)
            last = max(item.ids, key=lambda i: self.position[i])
            if len(ins) == 1 and outs == [last]:
                out.append(self.scope_unit(item, base, ins[0], last))
            else:
                out.extend(self.units(item, base))
        return out

    def scope_unit(self, scope: Scope, base: str, entry: str, last: str) -> Unit:
        """A one-in one-out child scope: a block call when its skeleton repeats, else a
        labelled group."""
        label = relative(scope.path, base)
        body, uses_in = self.lower(scope, entry, is_block=scope.cls not in CONTAINERS)
        if scope.cls not in CONTAINERS:
            inst = self._instance(scope, body, entry)
            if self.plan is not None and inst.index in self.plan.names:
                return Unit([entry], last, blocks.placeholder(inst.index), label, "block")
            if uses_in:
                body, _ = self.lower(scope, entry, is_block=False)
        return Unit([entry], last, ir.Group(body=blocks.tidy(body)), label, "group")

    def _instance(self, scope: Scope, body: tuple[Any, ...], entry: str) -> blocks.Instance:
        """The instance of ``scope``, recorded on its first lowering only (a scope lowered
        again inside its parent's second lowering keeps its index) and whatever its body (a
        body of one block call is no block of its own), so both passes number the instances
        alike."""
        index = self.by_path.get(scope.path)
        if index is None:
            index = self.by_path[scope.path] = len(self.instances)
            self.instances.append(blocks.Instance(scope.cls, body, self.shape(entry), index,
                                                  self._worth(body)))
        return self.instances[index]

    @staticmethod
    def _worth(body: tuple[Any, ...]) -> bool:
        return len(body) > 1 or any(not isinstance(e, ir.LayerCall)
                                    for s in body for e in getattr(s, "elements", ()))

    def lower(self, scope: Scope, entry: str | None, is_block: bool
              ) -> tuple[tuple[Any, ...], bool]:
        """``scope`` as statements, read from ``entry`` (in a block, ``in``), and whether
        they name ``in``."""
        outs = self.boundary(scope)[1] if scope.path else \
            [self.graph.output, *self.graph.outputs.values()]
        units = Finder(self.units(scope, scope.path), set(outs)).run()
        name = entry if entry in self.graph.inputs else "in" if is_block else None
        return emit(units, entry, name, self.graph, None if scope.path else self.graph.outputs)


def emit(units: list[Unit], entry: str | None, entry_name: str | None,
         graph: FlatGraph, outputs: dict[str, str] | None = None
         ) -> tuple[tuple[Any, ...], bool]:
    """Statements for ``units``: a unit that reads the previous statement's output is bare;
    any other reads its inputs by name (``t3 = add(a, b)``). ``outputs`` (name -> value, the
    network's several outputs) are named, each by ``name = identity(value)`` where its value
    has another name."""
    implicit = []
    cur = entry
    for u in units:
        implicit.append(u.ins == [cur] if cur is not None else False)
        cur = u.out
    names: dict[str, str] = {} if entry is None else {entry: entry_name or ""}
    names.update({k: k for k in graph.inputs})
    needed = {v for u, imp in zip(units, implicit) if not imp for v in u.ins}
    needed.update((outputs or {}).values())
    wanted = {v: k for k, v in (outputs or {}).items()}
    taken = {None, *names.values(), *(u.label for u in units)}  # an output name must be new
    stmts: list[Any] = []
    if entry is not None and entry in needed and not entry_name:
        names[entry] = f"t{len(names)}"
        stmts.append(_assign(names[entry], ir.LayerCall(callee="identity"), None))
    for u, imp in zip(units, implicit):
        alias = u.out in needed and u.label is not None and not NAME.fullmatch(u.label)
        if alias and not u.keyed:  # a label no DAG input can name: the layer is named
            u, alias = Unit(u.ins, u.out, u.element, None, u.op, u.members, False), False
        if u.out in needed:
            names[u.out] = f"t{len(names)}" if alias or not u.label else u.label
            if not u.label and wanted.get(u.out) not in taken:  # an output named as such
                names[u.out] = wanted[u.out]
        if imp:
            stmts.append(_named(u, names, needed, alias))
            continue
        refs = tuple(names[v] for v in u.ins)
        if isinstance(u.element, ir.LayerCall):
            stmts.append(_named(Unit(u.ins, u.out, u.element.model_copy(
                update={"inputs": refs}), u.label), names, needed, alias))
            continue
        stmts.append(ir.Chain(elements=(ir.LayerCall(callee="identity", inputs=refs),)))
        stmts.append(_named(u, names, needed, alias))
    for key, v in (outputs or {}).items():
        if names.get(v) != key:
            stmts.append(_assign(key, ir.LayerCall(callee="identity", inputs=(names[v],)), None))
    return tuple(_flatten(stmts)), entry is not None and entry in needed


def _flatten(stmts: list[Any]) -> list[Any]:
    return [x for s in stmts for x in (s if isinstance(s, tuple) else (s,))]


def _assign(name: str, element: Any, label: str | None) -> ir.Chain:
    return ir.Chain(label=ir.Label(parts=(name,)), assign=True, elements=(element,))


def _named(u: Unit, names: dict[str, str], needed: set[str], alias: bool = False
           ) -> ir.Chain | tuple[ir.Chain, ir.Chain]:
    """The unit's statement; an unlabelled unit whose output is read by name is assigned;
    a labelled one whose label no DAG input can name (``1``, a stateful layer of a
    numbered path) is followed by ``t3 = identity``, which names its output."""
    if u.out in needed and not u.label:
        return _assign(names[u.out], u.element, None)
    if alias:
        return stmt_of(u), _assign(names[u.out], ir.LayerCall(callee="identity"), None)
    return stmt_of(u)

"""Planning the classes: an expanded graph as :class:`ClassDef` s, one per class scope, the
instances of each block that are equal up to constants merged into one class, the network's
last."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from archspec.backends.eject.classes import ClassDef, Holder, Member, Ref, Seq, Step, Value
from archspec.backends.eject.inits import network_inits
from archspec.backends.eject.merging import merge, skeleton, tupled, value_key
from archspec.backends.eject.scopes import Scope, ScopeForms, split_id
from archspec.backends.naming import Namespace
from archspec.lang import ir
from archspec.lang.network import Graph, OpNode
from archspec.ops import Learned, Module


class Ejector(ScopeForms):
    """Turns an expanded graph into merged :class:`ClassDef` s, the network's last."""

    def __init__(self, graph: Graph, inits: tuple[ir.InitRule, ...] = ()) -> None:
        super().__init__(graph)
        self.init_rules = inits
        self.refs: dict[str, Ref] = {}  # scope path -> construction of its class
        self.classes: list[ClassDef] = []
        self.first: list[int] = []  # per class: post-order position of its first instance

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
        """The forward statements of ``scope``'s layers, in graph order; a holder's are
        inlined among them (interleaved holders, such as Res2Net's ``convs`` and ``bns``
        lists, run in turns)."""
        out: list[Step] = []
        for _, path, unit in sorted(self._units(scope, prefix), key=lambda u: u[0]):
            if isinstance(unit, str):
                out.append(self._leaf_step(self.graph.nodes[unit], path, values))
                continue
            (src,), outs = self.boundary(unit)
            name = path[-1]
            hint = name if name[:1].isalpha() else unit.kind
            out.append(Step(path, hint, path, (values[src],)))
            values[next(iter(outs))] = path
        return out

    def _units(self, scope: Scope, prefix: Value) -> list[tuple[int, Value, str | Scope]]:
        """What ``scope``'s forward calls, each with its graph position and path: a layer
        (its node id) or a sub-scope built as one module; holders are looked through."""
        units: list[tuple[int, Value, str | Scope]] = []
        for name in scope.members:
            path = (*prefix, name)
            if name in scope.leaves:
                units.append((self.position[scope.leaves[name]], path, scope.leaves[name]))
            elif self.form(sub := scope.scopes[name]) == "holder":
                units += self._units(sub, path)
            else:
                units.append((self.position[next(iter(self.boundary(sub)[1]))], path, sub))
        return units

    def _leaf_step(self, node: OpNode, path: Value, values: dict[str, Value]) -> Step:
        """The statement of one layer; its result is named by ``path``."""
        call = self.lowered[node.id]
        args = tuple(values[i] for i in node.inputs)
        name = path[-1]
        hint = name if name[:1].isalpha() else node.op
        values[node.id] = path
        if isinstance(call, Learned):
            return Step(path, hint, call.combine, args, learned=path)
        if isinstance(call, Module):
            return Step(path, hint, path, args, module=None if call.plain else call)
        return Step(path, hint, call, args)

    def class_def(self, scope: Scope) -> ClassDef:
        """``scope`` as a class (the network for the root)."""
        if scope.path == "":
            return self.network_def(scope)
        (src,), (out,) = self.boundary(scope)
        values: dict[str, Value] = {src: ("", "x")}
        steps = tuple(self.steps(scope, values, ()))
        label = scope.kind if scope.kind != "group" else split_id(scope.path)[1]
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
                        inits=network_inits(self.graph, self.lowered, self.init_rules),
                        train=tuple(k for k in self.graph.outputs
                                    if k in self.graph.train_outputs))

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
        keys = [value_key(v) for v in column]
        calls = [self.graph.scopes.get(s.path) for s in scopes]
        if all(c is not None for c in calls):
            for name in calls[0].args:
                if name not in taken and \
                        keys == [value_key(tupled(c.args.get(name))) for c in calls]:
                    return name
        channels = [self.graph.shape_of(self.boundary(s)[0][0])[:1] for s in scopes]
        if "in_channels" not in taken and all(len(c) == 1 for c in channels) and \
                keys == [value_key(c[0]) for c in channels]:
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

"""The module tree of an expanded graph (the scopes, block calls and labelled groups, that its
dotted node ids imply) and how each scope is built: as ``nn.Sequential`` (a plain chain), as a
class (one input from outside, one value used outside) or as a plain ``nn.Module()`` holder;
which scopes are classes, and in what order they can be written."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from archspec.backends.torch import lower, may_overwrite_input
from archspec.lang.network import Graph
from archspec.ops import Module


@dataclass
class Scope:
    """A node of the module tree: leaf layers and sub-scopes, in graph order."""

    path: str
    kind: str
    members: list[str] = field(default_factory=list)  # child local names, in order
    leaves: dict[str, str] = field(default_factory=dict)  # local name -> node id
    scopes: dict[str, Scope] = field(default_factory=dict)  # local name -> sub-scope


def split_id(node_id: str) -> tuple[str, str]:
    """``a.b.c`` -> ``("a.b", "c")``: the enclosing scope's path and the local name."""
    head, _, tail = node_id.rpartition(".")
    return head, tail


def build_tree(graph: Graph) -> Scope:
    """The module hierarchy implied by the dotted node ids."""
    root = Scope("", graph.name)
    index = {"": root}
    for node in graph:
        parent, name = split_id(node.id)
        scope = _ensure(index, parent, graph)
        scope.leaves[name] = node.id
        scope.members.append(name)
    return root


def _ensure(index: dict[str, Scope], path: str, graph: Graph) -> Scope:
    """The scope at ``path``, made (with the scopes above it) when ``index`` has none."""
    if path in index:
        return index[path]
    parent, name = split_id(path)
    holder = _ensure(index, parent, graph)
    kind = graph.scopes[path].kind if path in graph.scopes else "group"
    scope = index[path] = Scope(path, kind)
    holder.scopes[name] = scope
    holder.members.append(name)
    return scope


class ScopeForms:
    """The scopes of an expanded graph with their boundaries and forms."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        readers = graph.consumers()
        self.position = {node_id: i for i, node_id in enumerate(graph.nodes)}
        self.lowered = {n.id: lower(n, may_overwrite_input(graph, n, readers)) for n in graph}
        self.readers = readers
        self.tree = build_tree(graph)
        self._boundary: dict[str, tuple[list[str], set[str]]] = {}
        self._form: dict[str, str] = {}

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

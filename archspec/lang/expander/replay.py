"""Replayed block calls: a block called again with the same arguments, on inputs of the same
shapes and in the same context, builds the same layers under another path. The first such
call is expanded and recorded (:class:`Template`); the later ones copy its nodes, scopes and
names, renamed, instead of expanding the body again (a generated ResNet calls one block
hundreds of times per stage).

What a body builds depends only on the template's key:

- the block and its bound arguments (each with its type: ``1``, ``1.0`` and ``true`` differ);
- its inputs: their shapes, which of them are one value, which are constants (``_lifted``,
  E218) and which are channels-first maps (warning W302 looks through activations to them);
- the nesting depth (E705) and the blocks on the call stack (E240).

The network's parameters are the same for the whole expansion, and a body sees none of its
caller's names: its frame holds its inputs only, and the paths it makes and reads are all under
the call's own, fresh path. A call is recorded only when its body made no error and no warning
(a warning's notes name the call stack, which differs per call) and used only built-in ops (a
plugin's rules need not be pure). A template is replayed only when the layer, loop and
expression-work limits leave room for all of it and none of its paths is taken, so that an
error is raised by expanding the call, where expansion raises it. Not copied: the labelled
groups inside the call, which only statements inside it could re-open (every path through
the call's own is refused as taken).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any, NamedTuple, TypeVar

from archspec.lang import ir
from archspec.lang.expander.state import ExpanderState, Flow, Frame, Value
from archspec.lang.limits import MAX_ITERATIONS, MAX_LAYERS, MAX_WORK
from archspec.lang.network import OpNode, Scope
from archspec.lang.plugins import PLUGINS
from archspec.lang.source import Span
from archspec.ops.base import typed_key

T = TypeVar("T")


class Template(NamedTuple):
    """What one block call added, under its path ``prefix``, reading the values ``ins``."""

    prefix: str
    ins: tuple[Value, ...]
    out: Value
    nodes: tuple[OpNode, ...]
    scopes: tuple[Scope, ...]
    inits: tuple[tuple[str, Any, dict[str, Any]], ...]
    assigned: tuple[tuple[str, tuple[Span, Value]], ...]
    read: tuple[str, ...]
    bindings: tuple[tuple[tuple[str, str], list[Value]], ...]
    iterations: int
    work: int


class _Mark(NamedTuple):
    """The sizes of what an expansion has built, taken before a block's body."""

    nodes: int
    scopes: int
    warnings: int
    inits: int
    assigned: int
    read: int
    bindings: int
    iterations: int
    work: int
    failures: int
    errors: int


def _tail(items: Iterable[T], count: int) -> tuple[T, ...]:
    """The last ``count`` items of a dict view (read from its end: no walk over the rest)."""
    return tuple(reversed(tuple(islice(reversed(items), count))))  # type: ignore[call-overload]


class ReplayMixin(ExpanderState):
    """Expands a block call's body, or replays the recorded expansion of an equal call."""

    def call_body(self, block: ir.BlockDef, ins: tuple[Value, ...], args: dict[str, Any],
                  inner: Frame) -> Value:
        """The value the body of ``block`` gives on ``ins``, in the call's frame ``inner``."""
        key = self._template_key(block, ins, args)
        template = self.templates.get(key) if key is not None else None
        if template is not None and self._room_for(template):
            out = self._replay(template, ins, inner.prefix)
            if out is not None:
                return out
        mark = self._mark()
        out = self.body(block.body, Flow(ins[0]), inner)
        if key is not None and key not in self.templates:
            self.templates[key] = self._record(mark, ins, inner.prefix, out)
        return out

    def _template_key(self, block: ir.BlockDef, ins: tuple[Value, ...],
                      args: dict[str, Any]) -> tuple[Any, ...] | None:
        """What the body's expansion depends on (module docstring); None if not hashable."""
        key = (block.name, tuple((name, typed_key(v)) for name, v in args.items()),
               tuple(map(self.graph.shape_of, ins)), tuple(map(ins.index, ins)),
               tuple(v in self.constants for v in ins),
               tuple(self._map_source(v) is not None for v in ins),
               self.depth, tuple(name for name, _ in self.stack))
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def _mark(self) -> _Mark:
        g = self.graph
        return _Mark(len(g.nodes), len(g.scopes), len(g.warnings), len(g.block_inits),
                     len(self.assigned), len(self.read), len(self.bindings), self.iterations,
                     self.budget.used, self.failures, len(self.errors))

    def _record(self, mark: _Mark, ins: tuple[Value, ...], prefix: str,
                out: Value) -> Template | None:
        """The template of the call at ``prefix`` just expanded; None when it cannot be
        replayed (an error or warning, a plugin op, a value from outside its inputs)."""
        g = self.graph
        if (len(g.warnings), self.failures, len(self.errors)) != \
                (mark.warnings, mark.failures, mark.errors):
            return None
        inside = prefix + "."
        nodes = _tail(g.nodes.values(), len(g.nodes) - mark.nodes)
        known = {*ins, *(n.id for n in nodes)}
        scopes = _tail(g.scopes.values(), len(g.scopes) - mark.scopes)
        assigned = _tail(self.assigned.items(), len(self.assigned) - mark.assigned)
        read = _tail(self.read, len(self.read) - mark.read)
        bindings = _tail(self.bindings.items(), len(self.bindings) - mark.bindings)
        inits = tuple(g.block_inits[mark.inits:])
        ok = (out in known
              and all(n.id.startswith(inside) and n.op not in PLUGINS
                      and known.issuperset(n.inputs) for n in nodes)
              and all(s.path.startswith(inside) and s.output in known for s in scopes)
              and all(_under(k, prefix) and v in known for k, (_, v) in assigned)
              and all(_under(k, prefix) for k in read)
              and all((root == prefix or root.startswith(inside)) and known.issuperset(vs)
                      for (root, _), vs in bindings)
              and all(path.startswith(inside) for path, _, _ in inits))
        if not ok:
            return None
        return Template(prefix, ins, out, nodes, scopes, inits, assigned, read, bindings,
                        self.iterations - mark.iterations, self.budget.used - mark.work)

    def _room_for(self, t: Template) -> bool:
        """Whether the limits leave room for all of ``t`` (else the body is expanded, and
        raises the limit's error where expansion reaches it)."""
        return (len(self.graph.nodes) + len(t.nodes) <= MAX_LAYERS
                and self.iterations + t.iterations <= MAX_ITERATIONS
                and self.budget.used + t.work <= MAX_WORK)

    def _replay(self, t: Template, ins: tuple[Value, ...], prefix: str) -> Value | None:
        """Add ``t``'s layers, scopes and names under ``prefix``, reading ``ins``; returns the
        call's value, or None (nothing added) when one of its paths is taken."""
        cut = len(t.prefix)
        names = dict(zip(t.ins, ins))
        for n in t.nodes:
            names[n.id] = prefix + n.id[cut:]
        paths = [prefix + s.path[cut:] for s in t.scopes]
        if any(map(self.taken, [names[n.id] for n in t.nodes])) or any(map(self.taken, paths)):
            return None
        g = self.graph
        for n in t.nodes:
            node_id, inputs = names[n.id], tuple([names[i] for i in n.inputs])
            g.nodes[node_id] = n.renamed(node_id, inputs)
            if self.constants.issuperset(inputs):
                self.constants.add(node_id)
        for s, path in zip(t.scopes, paths):
            g.scopes[path] = Scope(path, s.kind, s.span, names[s.output], s.args)
        g.block_inits += [(prefix + path[cut:], rule, env) for path, rule, env in t.inits]
        for key, (span, value) in t.assigned:
            self.assigned[prefix + key[cut:]] = (span, names[value])
        for key in t.read:
            self.read[prefix + key[cut:]] = None
        for (root, name), values in t.bindings:
            self.bindings[(prefix + root[cut:], name)] = [names[v] for v in values]
        self.iterations += t.iterations
        self.budget.used += t.work
        return names[t.out]


def _under(key: str, prefix: str) -> bool:
    """Whether a ``"frame prefix/name"`` key belongs to a frame at or under ``prefix``."""
    return key.startswith((prefix + "/", prefix + "."))

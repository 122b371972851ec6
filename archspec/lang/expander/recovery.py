"""Recovery: an error in one statement is kept and expansion goes on with the next, so that a
file's independent errors are reported together (up to :data:`MAX_ERRORS`).

A failed statement produces a stand-in value (a pass-through of the value it read) that its
names are bound to, so later statements that read them are checked too. What follows from an
earlier error is not reported again: a shape error in a statement that reads a stand-in, or in
one whose own parts already failed (the ``add`` of a ``residual`` whose body failed); and an
error at a place already reported (a block called many times) is reported once. Going past a
limit (layers, loop iterations, nesting, expression work) stops at once.
"""

from __future__ import annotations

from typing import Any

from archspec.lang import ir
from archspec.lang.diagnostics import MAX_ERRORS, ArchspecError, Diagnostic
from archspec.lang.expander.state import Branches, DenseFlow, ExpanderState, Flow, Frame, Value
from archspec.lang.network import OpNode
from archspec.ops import REGISTRY

# Limits: going on after one of these would only meet it again.
FATAL = frozenset({"E703", "E704", "E705", "E707"})
# Shape errors: after an earlier error, these may be its consequence.
SHAPE_CODES = frozenset({"E214", "E301", "E302", "E303", "E304", "E305"})


class Stop(ArchspecError):
    """Every error kept, raised when there are :data:`MAX_ERRORS` of them: it passes through
    the statements and block calls around it unchanged."""


class RecoveryMixin(ExpanderState):
    """Keeps the errors of failed statements and stands in for the values they would give."""

    def recover(self, exc: ArchspecError, s: Any, flow: Flow, frame: Frame,
                failures: int) -> None:
        """Keep ``exc``, raised by statement ``s`` (``failures``: the count of failed
        statements before it started), then let ``flow`` go on with a stand-in value."""
        if isinstance(exc, Stop) or any(d.code in FATAL for d in exc.diagnostics):
            raise exc
        stand_in = self._stand_in(s, flow, frame)
        read = self._reads(s, flow, frame)
        cascade = all(d.code in SHAPE_CODES for d in exc.diagnostics) and (
            self.failures > failures or bool(read & self.stand_ins))
        self.failures += 1
        if not cascade:
            self.keep(exc.diagnostics)
        flow.push(stand_in)

    def keep(self, diagnostics: tuple[Diagnostic, ...]) -> None:
        """Add ``diagnostics`` to the expansion's errors (once per code and place); stop with
        all of them at :data:`MAX_ERRORS`."""
        seen = {(d.code, d.span) for d in self.errors}
        self.errors += [d for d in diagnostics if (d.code, d.span) not in seen]
        if len(self.errors) >= MAX_ERRORS:
            raise Stop(self.errors[:MAX_ERRORS])

    def _stand_in(self, s: Any, flow: Flow, frame: Frame) -> Value:
        """A pass-through node for what ``s`` would have given, bound to the names ``s``
        defines; its id is no layer name, so nothing can collide with it."""
        source = flow.features[-1] if isinstance(flow, DenseFlow) else (
            flow.start if isinstance(flow, Branches) else flow.last)
        node_id = f"{frame.path('<error>')}#{len(self.stand_ins)}"
        shape = self.graph.shape_of(source)
        op = REGISTRY["identity"]
        self.graph.nodes[node_id] = OpNode(node_id, op.name, op.attrs(), (source,), (shape,),
                                           shape, s.span, synthetic=True)
        self.stand_ins.add(node_id)
        label = getattr(s, "label", None)
        if label is not None and all(isinstance(p, str) for p in label.parts):
            for name in ("".join(label.parts), *s.more):
                frame.values[name] = node_id
        return node_id

    def _reads(self, s: Any, flow: Flow, frame: Frame) -> set[Value]:
        """The values statement ``s`` reads: its flow's input and the names its calls give."""
        read = set(flow.features) if isinstance(flow, DenseFlow) else (
            {flow.start} if isinstance(flow, Branches) else {flow.last})
        for el in getattr(s, "elements", ()):
            if isinstance(el, ir.LayerCall):
                names = [*(el.inputs or ()), *(ir.ref_name(a.value) for a in el.args)]
                read.update(frame.values[n] for n in names if n in frame.values)
        return read

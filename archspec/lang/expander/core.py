"""The entry point: :class:`Expander` (the parts put together, the network's parameters and
inputs, its outputs and the unused-name warning), the :data:`ELEMENTS` dispatch table and
:func:`expand`.

Shapes are inferred while expanding, because structure may depend on them (``in.channels``
in a ``shortcut if`` condition, ``conv2d(in.channels // 2)``). Each op's output shape comes
from its registry entry the moment the node is created.
"""

from __future__ import annotations

from typing import Any

from archspec.lang import ir
from archspec.lang.collection import paused
from archspec.lang.diagnostics import MAX_ERRORS, ArchspecError, Diagnostic, did_you_mean, error
from archspec.lang.expander.calls import CallsMixin
from archspec.lang.expander.flows import FlowsMixin
from archspec.lang.expander.names import NamesMixin
from archspec.lang.expander.nodes import NodesMixin
from archspec.lang.expander.recovery import RecoveryMixin, Stop
from archspec.lang.expander.replay import ReplayMixin
from archspec.lang.expander.state import Flow, Frame, Value
from archspec.lang.expander.statements import StatementsMixin
from archspec.lang.exprs import Evaluator
from archspec.lang.network import Graph
from archspec.lang.values import show


class Expander(StatementsMixin, FlowsMixin, NamesMixin, CallsMixin, NodesMixin, RecoveryMixin,
               ReplayMixin):
    """Walks a Spec's IR and builds the Graph; one instance per expansion. The errors of
    independent statements are raised together, after the whole network."""

    def run(self) -> Graph:
        if not self.spec.inputs:
            where = self.spec.blocks[0].span if self.spec.blocks else self.spec.span
            raise error("E111", "the file declares no `input`, so there is no network to build",
                        where, hint="a file of blocks only is a library: `import` it from a "
                                    "network spec")
        env = self._network_params()
        self.graph.params = dict(env)
        ev = Evaluator(env, None, self.budget)
        values: dict[str, Value] = {}
        for decl in self.spec.inputs:
            dims = tuple(ev(d) for d in decl.shape)
            if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
                raise error("E130", f"input `{decl.name}` has a bad shape {show(list(dims))}",
                            decl.span, hint="every dim must be a positive integer")
            self.graph.inputs[decl.name] = dims
            values[decl.name] = decl.name
        first = self.spec.inputs[0].name
        frame = Frame("", env, values, first)
        try:
            last = self.body(self.spec.body, Flow(first), frame)
        except Stop:
            raise
        except ArchspecError as exc:  # a limit: the errors before it, then it
            raise ArchspecError([*self.errors, *exc.diagnostics][:MAX_ERRORS]) from None
        try:
            self._outputs(frame, last)
        except ArchspecError as exc:
            self.keep(exc.diagnostics)
        if self.errors:
            raise ArchspecError(self.errors)
        return self.graph

    def _network_params(self) -> dict[str, Any]:
        env: dict[str, Any] = {}
        for p in self.spec.params:
            if p.name in self.spec.overrides:
                value = self.spec.overrides[p.name]
            elif p.default is not None:
                value = Evaluator(env, None, self.budget)(p.default)
            else:
                raise error("E121", f"network parameter `{p.name}` has no default and no value",
                            p.span, hint=f"give a default or pass --set {p.name}=...")
            env[p.name] = self._typed(value, p, p.span)
        return env

    def _outputs(self, frame: Frame, last: Value) -> None:
        if not self.spec.outputs:
            self.graph.outputs["output"] = last
        for decl in self.spec.outputs:
            if decl.cond is not None and not self.eval(decl.cond, frame):
                continue
            name = decl.name
            if name not in frame.values and name not in self.graph.nodes:
                raise error("E210", f"unknown output `{name}`", decl.span,
                            hint=did_you_mean(name, frame.values) or "name a layer or input")
            self.graph.outputs[name] = frame.values.get(name, name)
            if decl.train:
                self.graph.train_outputs.add(name)
        if not self.graph.outputs:
            raise error("E210", "every `output` condition is false: the network returns nothing",
                        self.spec.outputs[0].span, hint="make at least one output unconditional")
        if not self.graph.eval_outputs():
            raise error("E219", "every output is training-only: the eval forward returns "
                        "nothing", next(d for d in self.spec.outputs if d.train).span,
                        hint="drop `train` from the main output (the first, by convention)")
        used = set(self.graph.outputs.values())
        used.update(i for n in self.graph.nodes.values() for i in n.inputs)
        for key, (span, value) in self.assigned.items():
            if key not in self.read and value not in used:
                self.graph.warnings.append(Diagnostic(
                    "W201", f"`{key.rsplit('/', 1)[-1]}` is assigned but never used", span,
                    hint="use it as an input, list it in `output`, or remove it",
                    severity="warning"))

    def element(self, el: Any, cur: Value, frame: Frame) -> Value:
        """Expand one chain element reading ``cur``; returns the value it produces."""
        return getattr(self, ir.rule_for(ELEMENTS, el, "expander"))(el, cur, frame)


# The expander method for each chain element (a test checks it covers ir.Element): calls in
# calls.py, repeats and groups in statements.py, the branching elements in flows.py.
ELEMENTS: dict[type, str] = {ir.LayerCall: "_call", ir.Repeat: "_repeat_el", ir.Group: "_group",
                             ir.Concat: "_concat", ir.Dense: "_dense", ir.Residual: "_residual"}


@paused()
def expand(spec: ir.Spec) -> Graph:
    """Expand ``spec`` into a flat, shape-checked :class:`Graph` (every ``init`` rule checked
    to target some layer)."""
    from archspec.lang.initializers import block_plans, plan

    graph = Expander(spec).run()
    plan(graph, spec.inits)
    block_plans(graph)
    return graph

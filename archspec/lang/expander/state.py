"""The expander's state: values, naming frames, the ways a body is wired (:class:`Flow` and
its kinds) and :class:`ExpanderState`, the base every part of the expander builds on.

The parts (statements, flows, calls, nodes) are mixins of one :class:`Expander`; the methods
one part calls on another are declared here, so that each module imports this one only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archspec.lang import ir
from archspec.lang.diagnostics import ArchspecError, Diagnostic, error
from archspec.lang.exprs import Budget, Evaluator, check_type, checked
from archspec.lang.network import Graph
from archspec.lang.source import Span
from archspec.lang.values import show, type_name
from archspec.ops import OpDef
from archspec.ops.base import Shape

Value = str  # a node id or a graph-input name


@dataclass
class Frame:
    """Naming and binding context: the dotted prefix, the item counter and visible names.
    ``root`` is the prefix of the network or block call whose names are visible here (a
    labelled chain or group opens a sub-frame that shares them)."""

    prefix: str
    env: dict[str, Any]
    values: dict[str, Value]
    in_value: Value | None
    counter: int = 0
    root: str = ""

    def child_name(self, label: str | None) -> str:
        """The next item's name in this scope: its label, or its position."""
        name = label if label is not None else str(self.counter)
        self.counter += 1
        return name

    def path(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def sub(self, name: str) -> Frame:
        """A nested naming scope that shares bindings (labelled groups and chains)."""
        return Frame(self.path(name), self.env, self.values, self.in_value, root=self.root)


class Flow:
    """How a body's statements are wired: in sequence, as parallel branches, or densely."""

    def __init__(self, start: Value) -> None:
        self.start = start
        self.last = start

    def input(self, ex: ExpanderState, frame: Frame, span: Span) -> Value:
        return self.last

    def push(self, value: Value) -> None:
        self.last = value


class Branches(Flow):
    """``concat``: every statement reads the same input; outputs are collected."""

    def __init__(self, start: Value) -> None:
        super().__init__(start)
        self.outputs: list[Value] = []

    def input(self, ex: ExpanderState, frame: Frame, span: Span) -> Value:
        return self.start

    def push(self, value: Value) -> None:
        self.outputs.append(value)


class DenseFlow(Flow):
    """``dense``: every statement reads concat(input, all earlier outputs)."""

    def __init__(self, start: Value) -> None:
        super().__init__(start)
        self.features: list[Value] = [start]

    def input(self, ex: ExpanderState, frame: Frame, span: Span) -> Value:
        if len(self.features) == 1:
            return self.features[0]
        return ex.emit(frame, None, "concat", {}, tuple(self.features), span, synthetic=True)

    def push(self, value: Value) -> None:
        self.features.append(value)


class ExpanderState:
    """What one expansion holds: the spec, its blocks, the graph being built, the block-call
    stack, assigned and read names, the nesting depth, the loop count and the expression
    budget; with expression evaluation and parameter type checks, which every part uses."""

    def __init__(self, spec: ir.Spec) -> None:
        self.spec = spec
        self.blocks = spec.all_blocks()
        self.graph = Graph(spec.name, {})
        self.stack: list[tuple[str, Span]] = []
        self.assigned: dict[str, tuple[Span, Value]] = {}
        self.read: dict[str, None] = {}  # "prefix/name" read, in order (an ordered set)
        self.groups: dict[str, Frame] = {}  # labelled groups by path, to be re-opened
        self.bindings: dict[tuple[str, str], list[Value]] = {}  # (root, name): each value
        self.constants: set[Value] = set()  # nodes the same for every sample (Graph.constants)
        self.depth = 0
        self.iterations = 0
        self.budget = Budget()
        self.errors: list[Diagnostic] = []  # of failed statements, reported together
        self.stand_ins: set[Value] = set()  # the values failed statements stand in for
        self.failures = 0  # statements failed so far (reported or not)
        # (op, id of attrs, input shapes) -> (attrs, (shape, warnings, cost)): NodesMixin._rules
        self.rule_results: dict[tuple[Any, ...], tuple[Any, tuple[Any, ...]]] = {}
        self.templates: dict[tuple[Any, ...], Any] = {}  # block calls to replay (replay.py)

    def eval(self, e: Any, frame: Frame) -> Any:
        in_shape = self.graph.shape_of(frame.in_value) if frame.in_value else None
        return self.evaluate(e, frame.env, in_shape)

    def evaluate(self, e: Any, env: dict[str, Any], in_shape: Shape | None) -> Any:
        """The value of expression ``e`` over ``env`` and the input shape ``in_shape``, charged
        to the expansion's budget; a literal or a known name as :class:`Evaluator` gives it,
        without building one."""
        kind = type(e)
        if kind is ir.Lit:
            return checked(e.value, e.span, self.budget)
        if kind is ir.Var and e.name in env:
            return checked(env[e.name], e.span, self.budget)
        return Evaluator(env, in_shape, self.budget)(e)

    @staticmethod
    def _typed(value: Any, p: ir.Param, span: Span) -> Any:
        try:
            return check_type(value, p.type)
        except TypeError:
            raise error("E402", f"`{p.name}` expects {p.type}, got {show(value)} "
                        f"({type_name(value)})", span, hint=f"declared at {p.span}") from None

    if TYPE_CHECKING:
        # Implemented by the mixins of Expander (statements, flows, calls, nodes, core).
        def body(self, stmts: tuple[Any, ...], flow: Flow, frame: Frame) -> Value: ...

        def recover(self, exc: ArchspecError, s: Any, flow: Flow, frame: Frame,
                    failures: int) -> None: ...

        def element(self, el: Any, cur: Value, frame: Frame) -> Value: ...

        def chain(self, s: ir.Chain, cur: Value, frame: Frame) -> Value: ...

        def call(self, c: ir.LayerCall, cur: Value, frame: Frame,
                 label: str | None) -> Value: ...

        def _inputs(self, c: ir.LayerCall, cur: Value, frame: Frame) -> tuple[Value, ...]: ...

        def _ref_exprs(self, e: Any, frame: Frame) -> tuple[Value, ...]: ...

        def _refs(self, name: str, span: Span, frame: Frame) -> tuple[Value, ...]: ...

        def arg_value(self, a: ir.Arg, frame: Frame, c: ir.LayerCall) -> Any: ...

        def taken(self, path: str) -> bool: ...

        def claim(self, path: str, span: Span) -> None: ...

        def label_path(self, label: ir.Label, frame: Frame) -> tuple[str, ...]: ...

        def open_group(self, frame: Frame, name: str, span: Span,
                       reopen: bool = True) -> Frame: ...

        def close_group(self, inner: Frame, span: Span, out: Value) -> None: ...

        def assign_name(self, frame: Frame, name: str) -> str: ...

        def bind(self, frame: Frame, name: str, span: Span, out: Value) -> None: ...

        def each(self, name: str, span: Span, frame: Frame) -> tuple[Value, ...]: ...

        def _unique(self, frame: Frame, base: str) -> str: ...

        def _op_attrs(self, op: OpDef, args: tuple[ir.Arg, ...], frame: Frame,
                      c: ir.LayerCall) -> dict[str, Any]: ...

        def call_body(self, block: ir.BlockDef, ins: tuple[Value, ...], args: dict[str, Any],
                      inner: Frame) -> Value: ...

        def _map_source(self, value: Value) -> str | None: ...

        def emit(self, frame: Frame, label: str | None, opname: str, attrs: Any,
                 inputs: tuple[Value, ...], span: Span, synthetic: bool = False) -> Value: ...

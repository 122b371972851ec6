"""Nodes: :meth:`NodesMixin.emit` adds one op node to the graph (layer limit, unique names,
input count, shape inference, unread-input and features-last warnings, tensor-size limit);
with the helpers that locate a shape error and find a map's channels-first source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from archspec.lang.diagnostics import ArchspecError, Diagnostic, error
from archspec.lang.expander.state import ExpanderState, Frame, Value
from archspec.lang.limits import MAX_ELEMENTS, MAX_LAYER_TENSORS, MAX_LAYERS
from archspec.lang.network import OpNode
from archspec.lang.plugins import PLUGINS
from archspec.lang.source import Span
from archspec.ops import REGISTRY, Cost, Ctx, OpDef, ShapeError
from archspec.ops.base import ACTIVATIONS, Category, Shape, fmt_shape, numel, validated

T = TypeVar("T")


def run_rule(op: OpDef, span: Span, rule: Callable[..., T], *args: Any) -> T:
    """``rule(*args)``, a rule of ``op``: a plugin op's own failure (anything but a ShapeError)
    is an E011 at the call, not an internal error. A built-in op's rule runs as it is."""
    if op.name not in PLUGINS:
        return rule(*args)
    try:
        return rule(*args)
    except (ShapeError, ArchspecError):
        raise
    except Exception as exc:
        raise error("E011", f"plugin op `{op.name}` (from {PLUGINS[op.name]}) failed: "
                    f"{type(exc).__name__}: {exc}", span,
                    hint=f"a bug in the plugin package {PLUGINS[op.name]}; report it there"
                    ) from None


ELEMENTWISE = frozenset({Category.ADD, Category.MUL, Category.ARITHMETIC})
"""Categories of the ops that broadcast their inputs element-wise (add, mul, sub, div...)."""


class NodesMixin(ExpanderState):
    """Creates the graph's op nodes, each with its output shape inferred and checked."""

    def emit(self, frame: Frame, label: str | None, opname: str, attrs: Any,
             inputs: tuple[Value, ...], span: Span, synthetic: bool = False) -> Value:
        if len(self.graph.nodes) >= MAX_LAYERS:
            raise error("E703", f"more than {MAX_LAYERS:,} layers", span,
                        hint="`repeat` and `for` counts multiply when nested")
        op = REGISTRY[opname]
        if isinstance(attrs, dict):
            attrs = validated(op.attrs, attrs)
        name = self._unique(frame, opname) if synthetic else frame.child_name(label)
        node_id = frame.path(name)
        if node_id in self.graph.nodes or node_id in self.graph.inputs:
            first = self.graph.nodes.get(node_id)
            raise error("E213", f"duplicate layer name `{node_id}`", span,
                        hint="give each layer in a block a different name",
                        notes=(("first defined here", first.span),) if first else ())
        self.claim(node_id, span)
        shapes = self._lifted(op, inputs, tuple(map(self.graph.shape_of, inputs)))
        lo, hi = op.inputs
        if len(inputs) < lo or (hi is not None and len(inputs) > hi):
            raise error("E214", f"`{opname}` takes {lo}{'+' if hi is None else ''} input(s), "
                        f"got {len(inputs)}", span, hint="list its inputs: `op(...)(a, b)`")
        if op.constant_inputs:
            self._check_constant(op, inputs, span)
        shape, dropped, held = self._rules(op, shapes, attrs, span, inputs, node_id)
        if dropped:
            notes = tuple((f"in block `{name}` called here", where)
                          for name, where in reversed(self.stack))
            self.graph.warnings.append(Diagnostic(
                "W301", f"layer `{node_id}` ({opname}) never reads some input: "
                + "; ".join(dropped), span, hint="adjust the padding, stride or input size",
                severity="warning", notes=notes))
        if op.features_last and len(shapes[0]) >= 3 and (src := self._map_source(inputs[0])):
            self.graph.warnings.append(Diagnostic(
                "W302", f"`{node_id}` ({opname}) maps the last dim of a {fmt_shape(shapes[0])} "
                f"map from `{src}` ({self.graph.nodes[src].op}): its width, not its channels",
                span, hint="add `flatten` (or a global pooling and `flatten`) before it; to map "
                           "the channels, put them last first (`permute([1, 2, 0])`)",
                severity="warning"))
        self.graph.nodes[node_id] = OpNode(node_id, op.name, attrs, inputs, shapes, shape, span,
                                           synthetic, held)
        if self.constants.issuperset(inputs):
            self.constants.add(node_id)
        return node_id

    def _rules(self, op: OpDef, shapes: tuple[Shape, ...], attrs: Any, span: Span,
               inputs: tuple[Value, ...], node_id: str) -> tuple[Shape, list[str], Cost]:
        """The output shape (checked against :data:`MAX_ELEMENTS`), the unread-input warnings
        and the cost (checked against :data:`MAX_LAYER_TENSORS`) of ``op`` on ``shapes``. A
        built-in op's rules are pure functions of the shapes and the attributes, whose equal
        values are one instance (:func:`validated`): their results are kept and given again
        for the same instance and shapes (the layers of a block called many times)."""
        key = (op.name, id(attrs), shapes)
        kept = self.rule_results.get(key)
        if kept is not None and kept[0] is attrs:
            return kept[1]
        shape = self._infer(op, shapes, attrs, span, inputs)
        if numel(shape) > MAX_ELEMENTS:
            raise error("E701", f"`{node_id}` ({op.name}) gives {numel(shape):.3g} elements per "
                        f"sample ({fmt_shape(shape)}); at most {MAX_ELEMENTS:,}", span,
                        hint="no count of this tensor fits in 64 bits; check its sizes")
        dropped = run_rule(op, span, op.warn, shapes, attrs)
        held = run_rule(op, span, op.cost, Ctx(shapes, shape, attrs))
        if held.params + held.buffers > MAX_LAYER_TENSORS:
            raise error("E708", f"`{node_id}` ({op.name}) holds {held.params + held.buffers:,} "
                        f"parameter and buffer elements; at most {MAX_LAYER_TENSORS:,}", span,
                        hint="a layer this large cannot be built; check its sizes")
        if op.name not in PLUGINS:
            self.rule_results[key] = (attrs, (shape, dropped, held))
        return shape, dropped, held

    def _lifted(self, op: OpDef, inputs: tuple[Value, ...],
                shapes: tuple[Shape, ...]) -> tuple[Shape, ...]:
        """The input shapes of an element-wise op, each constant input of a lower rank given
        leading 1s (a (D,) layer-scale against (T, D) tokens is (1, D)): the backends hold a
        constant with a batch dim of 1, which broadcasts over the dims it lacks."""
        if len(shapes) < 2 or op.category not in ELEMENTWISE:
            return shapes
        rank = max(map(len, shapes))
        return tuple((1,) * (rank - len(s)) + s if v in self.constants else s
                     for v, s in zip(inputs, shapes))

    def _check_constant(self, op: OpDef, inputs: tuple[Value, ...], span: Span) -> None:
        """The inputs ``op`` needs the same for every sample (``take``'s index) must come
        from a ``buffer`` or ``parameter`` alone (E218)."""
        for i in op.constant_inputs:
            value = inputs[i]
            if value not in self.constants:
                raise error("E218", f"input {i + 1} of `{op.name}` (`{value}`) must be the same "
                            "for every sample", span,
                            hint="compute it from a `buffer` (or `parameter`) alone, e.g. "
                                 "`index = buffer(\"relative_position_index\", [7, 7])`")

    def _map_source(self, value: Value) -> str | None:
        """The layer whose (C, *spatial) map ``value`` is, through activations: a
        ``channels_first`` op (convolution, pooling, batch norm...); None when the layout is
        not known to be channels-first (a permute, a norm over features, a graph input)."""
        while value in self.graph.nodes:
            node = self.graph.nodes[value]
            op = REGISTRY[node.op]
            if op.channels_first:
                return node.id
            if op.category not in ACTIVATIONS or len(node.inputs) != 1:
                return None
            value = node.inputs[0]
        return None

    def _unique(self, frame: Frame, base: str) -> str:
        name, n = base, 1
        while self.taken(frame.path(name)):
            name, n = f"{base}_{n}", n + 1
        return name

    def _infer(self, op: OpDef, shapes: tuple[Shape, ...], attrs: Any, span: Span,
               inputs: tuple[Value, ...]) -> Shape:
        try:
            return run_rule(op, span, op.infer, shapes, attrs)
        except ShapeError as exc:
            raise self.shape_error(exc, inputs, shapes, span) from None

    def shape_error(self, exc: ShapeError, inputs: tuple[Value, ...],
                    shapes: tuple[Shape, ...], span: Span) -> ArchspecError:
        """``exc`` located at ``span``; with several inputs, each input's shape in the message
        and a note at the layer that made it."""
        notes: tuple[tuple[str, Span], ...] = ()
        if len(inputs) > 1:
            notes = tuple((f"input {i + 1} `{v}` has shape {fmt_shape(s)}",
                           self._where(v)) for i, (v, s) in enumerate(zip(inputs, shapes)))
        return error(exc.code, f"{exc.message} (input {' and '.join(map(fmt_shape, shapes))})"
                     if len(inputs) > 1 else exc.message, span, hint=exc.hint, notes=notes)

    def _where(self, value: Value) -> Span:
        if value in self.graph.nodes:
            return self.graph.nodes[value].span
        return next(d.span for d in self.spec.inputs if d.name == value)

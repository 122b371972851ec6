"""Flows: chains and labels, multi-result assignment (``a, b = chunk(2)(x)``), the elements
that wire several paths (``concat``, ``dense``, ``residual`` with its ``shortcut``), and the
DAG inputs a statement names (layers, ``in``, paths such as ``backbone.4``)."""

from __future__ import annotations

from typing import Any

from archspec.lang import ir
from archspec.lang.diagnostics import did_you_mean, error
from archspec.lang.expander.state import Branches, DenseFlow, ExpanderState, Flow, Frame, Value
from archspec.lang.plugins import lookup
from archspec.lang.source import Span
from archspec.ops import ShapeError


class FlowsMixin(ExpanderState):
    """Expands chains and the elements that branch and merge, and resolves named inputs."""

    # ------------------------------------------------------------------ chains
    def chain(self, s: ir.Chain, cur: Value, frame: Frame) -> Value:
        if s.more:
            return self._unpack(s, cur, frame)
        if s.label is None:
            for el in s.elements:
                cur = self.element(el, cur, frame)
            return cur
        path = self.label_path(s.label, frame)
        where, opened = frame, []
        for segment in path[:-1]:  # convs.0: the group `convs`, opened or re-opened
            where = self.open_group(where, segment, s.label.span)
            opened.append(where)
        name = self.assign_name(where, path[-1]) if s.assign else path[-1]
        if len(s.elements) == 1 and isinstance(s.elements[0], ir.LayerCall):
            out = self.call(s.elements[0], cur, where, name)
        else:
            inner = self.open_group(where, name, s.label.span, reopen=not s.assign)
            for el in s.elements:
                cur = self.element(el, cur, inner)
            out = cur
            opened.append(inner)
        for group in opened:
            self.close_group(group, s.span, out)
        if s.assign:
            self.bind(frame, path[-1], s.label.span, out)
        else:
            frame.values[".".join(path)] = out
        return out

    def _unpack(self, s: ir.Chain, cur: Value, frame: Frame) -> Value:
        """``a, b = chunk(2)(x)``: one node per result of a multi-result op, named by the
        targets, each with its ``index``. The statement's value is the last result."""
        names = (*self.label_path(s.label, frame), *s.more)
        (c,) = s.elements if len(s.elements) == 1 else (None,)
        op = lookup(c.callee, c.span) if isinstance(c, ir.LayerCall) else None
        if op is None or op.outputs is None:
            raise error("E215", f"only an op with several results can be assigned to "
                        f"{len(names)} names", s.span,
                        hint="e.g. `a, b = chunk(2)(x)` or `a, b = split([16, 48])(x)`; see "
                             "`archspec ops`")
        inputs = self._inputs(c, cur, frame)
        attrs = self._op_attrs(op, c.args, frame, c)
        count = op.outputs(tuple(self.graph.shape_of(i) for i in inputs), attrs)
        if count != len(names):
            raise error("E215", f"`{op.name}` gives {count} results here, assigned to "
                        f"{len(names)} names", s.span,
                        hint=f"write {count} names before `=`")
        out = cur
        for i, name in enumerate(names):
            out = self.emit(frame, self.assign_name(frame, name), op.name,
                            attrs.model_copy(update={"index": i}), inputs, c.span)
            self.bind(frame, name, s.label.span, out)
        return out

    # ------------------------------------------------------------------ branching elements
    def _concat(self, el: ir.Concat, cur: Value, frame: Frame) -> Value:
        branches = Branches(cur)
        self.body(el.body, branches, frame)
        if not branches.outputs:
            raise error("E220", "`concat` has no branches", el.span,
                        hint="put one branch per line inside `concat { ... }`")
        attrs = {a.name: self.eval(a.value, frame) for a in el.args if a.name}
        return self.emit(frame, None, "concat", attrs, tuple(branches.outputs), el.span,
                         synthetic=True)

    def _dense(self, el: ir.Dense, cur: Value, frame: Frame) -> Value:
        dense = DenseFlow(cur)
        self.body(el.body, dense, frame)
        return self.emit(frame, None, "concat", {}, tuple(dense.features), el.span,
                         synthetic=True)

    def _residual(self, el: ir.Residual, cur: Value, frame: Frame) -> Value:
        main = self.body(el.body, Flow(cur), frame)
        short = cur
        if el.shortcut is not None:
            take = True if el.shortcut_if is None else self.eval(el.shortcut_if, frame)
            if take:
                short = self.body(el.shortcut, Flow(cur), frame)
        shapes = (self.graph.shape_of(main), self.graph.shape_of(short))
        if shapes[0] != shapes[1]:  # `add` broadcasts; a residual's two paths must agree
            raise self.shape_error(ShapeError(
                "`add` inputs have different shapes", code="E305",
                hint="make every branch end in the same shape, e.g. with a projection "
                     "shortcut"), (main, short), shapes, el.span)
        return self.emit(frame, None, "add", {}, (main, short), el.span, synthetic=True)

    # ------------------------------------------------------------------ DAG inputs
    def _inputs(self, c: ir.LayerCall, cur: Value, frame: Frame) -> tuple[Value, ...]:
        if c.inputs is None:
            return (cur,)
        spans = c.input_spans or (c.span,) * len(c.inputs)
        return tuple(v for n, s in zip(c.inputs, spans) for v in self._refs(n, s, frame))

    def _ref_exprs(self, e: Any, frame: Frame) -> tuple[Value, ...]:
        """The values a positional input of a merge op names (``add(a, backbone.4)``)."""
        name = ir.ref_name(e)
        if name is None:
            raise error("E211", "inputs of a merge op must be layer names", e.span,
                        hint="e.g. `y = add(a, b)` or `add(a, backbone.4)`; give attributes "
                             "by keyword")
        return self._refs(name, e.span, frame)

    def _refs(self, name: str, span: Span, frame: Frame) -> tuple[Value, ...]:
        """The values DAG-input text names: one, or every value of ``each(name)``."""
        if name.startswith("each(") and name.endswith(")"):
            return self.each(name[len("each("):-1], span, frame)
        return (self._ref(name, span, frame),)

    def _ref(self, name: str, span: Span, frame: Frame) -> Value:
        if name == "in" and frame.in_value is not None:
            return frame.in_value
        if name in frame.values:
            self.read[f"{frame.prefix}/{name}"] = None
            return frame.values[name]
        if name == "<not a name>":
            raise error("E211", "a DAG input must be a layer or input name", span,
                        hint="write `op(attrs)(a, b)` with names of earlier layers")
        if "." in name:
            return self._path_ref(name, span, frame)
        raise error("E212", f"unknown layer or input `{name}`", span,
                    hint=did_you_mean(name, frame.values) or
                    "only layers defined earlier in the same block can be referenced")

    def _path_ref(self, name: str, span: Span, frame: Frame) -> Value:
        """``backbone.4``: the output of an earlier layer or scope by its path, relative to
        the current scope (reads a numbered item that no label can name)."""
        path = f"{frame.root}.{name}" if frame.root else name
        if path in self.graph.nodes:
            return path
        if path in self.graph.scopes:
            return self.graph.scopes[path].output
        known = [*self.graph.nodes, *self.graph.scopes]
        raise error("E212", f"no earlier layer or block at path `{path}`", span,
                    hint=did_you_mean(path, known) or
                    "a path names a layer defined before this one, e.g. `backbone.4`")

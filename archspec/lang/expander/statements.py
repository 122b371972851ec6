"""Statements: bodies (with the nesting limit), ``if``, ``for`` and ``repeat n as i`` (with
the loop-iteration limit), and the chain elements that hold a body: ``repeat`` and groups."""

from __future__ import annotations

from typing import Any

from archspec.lang import ir
from archspec.lang.diagnostics import ArchspecError, error
from archspec.lang.expander.state import ExpanderState, Flow, Frame, Value
from archspec.lang.limits import MAX_ITERATIONS, MAX_NESTING
from archspec.lang.source import Span
from archspec.lang.values import show


class StatementsMixin(ExpanderState):
    """Walks a body's statements, unrolling loops and choosing ``if`` branches."""

    def body(self, stmts: tuple[Any, ...], flow: Flow, frame: Frame) -> Value:
        if stmts and self.depth >= MAX_NESTING:
            raise error("E705", f"bodies and block calls nested more than {MAX_NESTING} deep",
                        stmts[0].span, hint="flatten the structure or use `repeat` / `for`")
        self.depth += 1
        try:
            for stmt in stmts:
                failures = self.failures
                try:
                    self.stmt(stmt, flow, frame)
                except ArchspecError as exc:  # kept; the next statement is checked too
                    self.recover(exc, stmt, flow, frame, failures)
        finally:
            self.depth -= 1
        return flow.last

    def _iterate(self, span: Span) -> None:
        """Count one loop iteration against :data:`MAX_ITERATIONS`."""
        self.iterations += 1
        if self.iterations > MAX_ITERATIONS:
            raise error("E704", f"more than {MAX_ITERATIONS:,} loop iterations", span,
                        hint="`repeat` and `for` counts multiply when nested")

    def stmt(self, s: Any, flow: Flow, frame: Frame) -> None:
        if isinstance(s, ir.For):
            self._for(s, flow, frame)
        elif isinstance(s, ir.If):
            branch = s.then if self.eval(s.cond, frame) else s.other
            self.body(branch or (), flow, frame)
        elif s.label is None and len(s.elements) == 1 and isinstance(s.elements[0], ir.Repeat):
            self._repeat(s.elements[0], flow, frame)
        else:
            flow.push(self.chain(s, flow.input(self, frame, s.span), frame))

    def _for(self, s: ir.For, flow: Flow, frame: Frame) -> None:
        items = self.eval(s.iterable, frame)
        if not isinstance(items, (list, tuple)):
            raise error("E410", f"`for` needs a list, got {show(items)}", s.iterable.span,
                        hint="e.g. `for c in [64, 128]` or `for i in range(n)`")
        for item in items:
            self._iterate(s.iterable.span)
            if len(s.vars) > 1:
                if not isinstance(item, (list, tuple)) or len(item) != len(s.vars):
                    raise error("E411", f"cannot unpack {show(item)} into "
                                f"{', '.join(s.vars)}", s.iterable.span,
                                hint=f"every item must be a list of {len(s.vars)} values")
                frame.env.update(zip(s.vars, item))
            else:
                frame.env[s.vars[0]] = item
            self.body(s.body, flow, frame)

    def _repeat(self, r: ir.Repeat, flow: Flow, frame: Frame) -> None:
        count = self.eval(r.count, frame)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise error("E412", f"`repeat` count must be a non-negative int, got {show(count)}",
                        r.count.span, hint="e.g. `repeat 3 conv2d(64, 3)`; use `//` for ints")
        for i in range(count):
            self._iterate(r.count.span)
            if r.var:
                frame.env[r.var] = i
            self.body(r.body, flow, frame)

    def _repeat_el(self, el: ir.Repeat, cur: Value, frame: Frame) -> Value:
        flow = Flow(cur)
        self._repeat(el, flow, frame)
        return flow.last

    def _group(self, el: ir.Group, cur: Value, frame: Frame) -> Value:
        return self.body(el.body, Flow(cur), frame)

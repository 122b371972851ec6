"""Calls and argument binding: op calls (inputs, positional and keyword attributes checked
against the op's pydantic model), block calls (recursion check, one input, parameters bound
with their defaults and types, diagnostics noted with where the block was called)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from archspec.lang import ir
from archspec.lang.diagnostics import ArchspecError, Diagnostic, did_you_mean, error
from archspec.lang.expander.recovery import Stop
from archspec.lang.expander.state import ExpanderState, Frame, Value
from archspec.lang.network import Scope
from archspec.lang.plugins import lookup
from archspec.lang.source import Span
from archspec.lang.values import show, signature
from archspec.ops import REGISTRY, OpDef
from archspec.ops.base import Attrs, Shape, validated


class CallsMixin(ExpanderState):
    """Expands a layer call: an op becomes one node, a block its body in a scope of its own."""

    # ------------------------------------------------------------------ ops
    def _call(self, el: ir.LayerCall, cur: Value, frame: Frame) -> Value:
        return self.call(el, cur, frame, None)

    def call(self, c: ir.LayerCall, cur: Value, frame: Frame, label: str | None) -> Value:
        if c.callee in self.blocks:
            return self.block_call(c, cur, frame, label)
        op = lookup(c.callee, c.span)
        if op is None:
            raise error("E201", f"unknown op or block `{c.callee}`", c.span,
                        hint=did_you_mean(c.callee, [*REGISTRY, *self.blocks]) or
                        "see `archspec ops` for the list of ops")
        positional = [a for a in c.args if a.name is None]
        if op.inputs == (0, 0) and not c.inputs:
            inputs: tuple[Value, ...] = ()
            args = c.args
        elif op.inputs[1] is None and c.inputs is None and positional:
            inputs = tuple(v for a in positional for v in self._ref_exprs(a.value, frame))
            args = tuple(a for a in c.args if a.name is not None)
        else:
            inputs = self._inputs(c, cur, frame)
            args = c.args
        attrs = self._op_attrs(op, args, frame, c)
        if op.outputs is not None:
            count = op.outputs(tuple(self.graph.shape_of(i) for i in inputs), attrs)
            raise error("E215", f"`{op.name}` gives {count} results; name each of them",
                        c.span, hint=f"e.g. `{', '.join('abcdefgh'[:min(count, 8)])} = "
                                     f"{op.name}(...)(x)`")
        return self.emit(frame, label, op.name, attrs, inputs, c.span)

    def _op_attrs(self, op: OpDef, args: tuple[ir.Arg, ...], frame: Frame,
                  c: ir.LayerCall) -> Attrs:
        values: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        pos = [a for a in args if a.name is None]
        if len(pos) > len(op.positional):
            extra = pos[len(op.positional)]
            raise error("E231", f"`{op.name}` takes at most {len(op.positional)} positional "
                        f"argument(s), got {len(pos)}", extra.span,
                        hint=f"signature: {signature(op)}")
        for name, a in zip(op.positional, pos):
            values[name], spans[name] = self.arg_value(a, frame, c), a.span
        for a in args:
            if a.name is None:
                continue
            if a.name == "index" and op.outputs is not None:
                raise error("E233", f"`{op.name}` has no parameter `index`", a.span,
                            hint="name one result per piece instead: `a, b = "
                                 f"{op.name}(...)(x)`, or use `slice` / `select`")
            if a.name in values:
                raise error("E232", f"`{a.name}` given twice", a.span,
                            hint="give each argument once, by position or by name")
            values[a.name], spans[a.name] = self.arg_value(a, frame, c), a.span
        return self._validate(op, values, spans, c)

    def _validate(self, op: OpDef, values: dict[str, Any], spans: dict[str, Span],
                  c: ir.LayerCall) -> Attrs:
        try:
            return validated(op.attrs, values)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = str(err["loc"][0]) if err["loc"] else ""
            span = spans.get(name, c.span)
            fields = list(op.attrs.model_fields)
            if err["type"] == "extra_forbidden":
                raise error("E233", f"`{op.name}` has no parameter `{name}`", span,
                            hint=did_you_mean(name, fields) or f"signature: {signature(op)}"
                            ) from None
            if err["type"] == "missing":
                raise error("E234", f"`{op.name}` needs `{name}`", c.span,
                            hint=f"signature: {signature(op)}") from None
            msg = err["msg"].removeprefix("Value error, ")
            if name in values and msg[:1] != "`":
                msg = f"`{name}` (={show(values[name])}): {msg[0].lower()}{msg[1:]}"
            raise error("E235", f"bad argument for `{op.name}`: {msg}", span,
                        hint=f"signature: {signature(op)}") from None

    # ------------------------------------------------------------------ blocks
    def block_call(self, c: ir.LayerCall, cur: Value, frame: Frame, label: str | None) -> Value:
        block = self.blocks[c.callee]
        if any(name == block.name for name, _ in self.stack):
            chain = " -> ".join([n for n, _ in self.stack] + [block.name])
            raise error("E240", f"block `{block.name}` calls itself ({chain})", c.span,
                        hint="blocks cannot recurse; use `repeat` or `for` for repetition")
        ins = self._block_inputs(block, c, cur, frame)
        inp = ins[0]
        args = self._bind(block, c, frame, self.graph.shape_of(inp))
        env = {**self.graph.params, **args}
        path = frame.path(label if label is not None else str(frame.counter))
        self.claim(path, c.span)
        frame.child_name(label)
        inner = Frame(path, env, {"in": inp, **dict(zip(block.inputs, ins))}, inp, root=path)
        self.stack.append((block.name, c.span))
        kept = len(self.errors)
        try:
            out = self.call_body(block, ins, args, inner)
        except Stop:
            raise
        except ArchspecError as exc:
            raise ArchspecError(_called_from(d, block.name, inner.prefix, c.span)
                                for d in exc.diagnostics) from None
        finally:
            self.stack.pop()
            self.errors[kept:] = [_called_from(d, block.name, inner.prefix, c.span)
                                  for d in self.errors[kept:]]
        self.graph.scopes[inner.prefix] = Scope(inner.prefix, block.name, c.span, out, args)
        self.graph.block_inits += [(inner.prefix, rule, env) for rule in block.inits]
        return out

    def _block_inputs(self, block: ir.BlockDef, c: ir.LayerCall, cur: Value,
                      frame: Frame) -> tuple[Value, ...]:
        """The values a block call reads, one per input the block declares (one, `in`, when
        it declares none)."""
        ins = self._inputs(c, cur, frame) if c.inputs else (cur,)
        if block.inputs and len(ins) != len(block.inputs):
            names = ", ".join(block.inputs)
            raise error("E216", f"block `{block.name}` takes {len(block.inputs)} input(s) "
                        f"({names}), got {len(ins)}", c.span,
                        hint=f"give one input for each of ({names}), in that order, in the "
                             f"call's second parentheses: `{block.name}(...)(...)`")
        if not block.inputs and len(ins) != 1:
            raise error("E216", f"block `{block.name}` takes one input (`in`), got {len(ins)}",
                        c.span, hint=f"name its inputs where it is defined, `block "
                                     f"{block.name}(...)(a, b) {{ ... }}`, or merge them first "
                                     "(`add`, `concat`, `mul`)")
        return ins

    def _bind(self, block: ir.BlockDef, c: ir.LayerCall, frame: Frame,
              in_shape: Shape) -> dict[str, Any]:
        params = {p.name: p for p in block.params}
        given: dict[str, tuple[Any, Span]] = {}
        pos = [a for a in c.args if a.name is None]
        if len(pos) > len(block.params):
            raise error("E231", f"block `{block.name}` takes {len(block.params)} argument(s), "
                        f"got {len(pos)}", pos[len(block.params)].span,
                        hint=f"defined at {block.span}")
        for p, a in zip(block.params, pos):
            given[p.name] = (self.arg_value(a, frame, c), a.span)
        for a in c.args:
            if a.name is None:
                continue
            if a.name not in params:
                raise error("E233", f"block `{block.name}` has no parameter `{a.name}`",
                            a.span, hint=did_you_mean(a.name, params) or
                            f"parameters: {', '.join(params) or '(none)'}")
            if a.name in given:
                raise error("E232", f"`{a.name}` given twice", a.span,
                            hint="give each argument once, by position or by name")
            given[a.name] = (self.arg_value(a, frame, c), a.span)
        return self._defaults(block, given, c, in_shape)

    def _defaults(self, block: ir.BlockDef, given: dict[str, tuple[Any, Span]],
                  c: ir.LayerCall, in_shape: Shape) -> dict[str, Any]:
        env: dict[str, Any] = dict(self.graph.params)
        for p in block.params:
            if p.name in given:
                value, span = given[p.name]
            elif p.default is not None:
                value, span = self.evaluate(p.default, env, in_shape), p.span
            else:
                raise error("E234", f"block `{block.name}` needs `{p.name}`", c.span,
                            hint=f"parameters: {', '.join(_param_sig(q) for q in block.params)}")
            env[p.name] = self._typed(value, p, span)
        return {p.name: env[p.name] for p in block.params}


def _called_from(d: Diagnostic, block: str, path: str, span: Span) -> Diagnostic:
    """Add a "called from" note to a diagnostic raised inside a block's body."""
    note = (f"in block `{block}` (`{path}`) called here", span)
    return replace(d, notes=(*d.notes, note))


def _param_sig(p: ir.Param) -> str:
    return p.name + ("" if p.default is None else "=...")

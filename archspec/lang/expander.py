"""Expansion: blocks, arguments, repeats, loops and conditions -> a flat :class:`Graph`.

Shapes are inferred while expanding, because structure may depend on them (``in.channels``
in a ``shortcut if`` condition, ``conv2d(in.channels // 2)``). Each op's output shape comes
from its registry entry the moment the node is created.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from archspec.lang import ir
from archspec.lang.diagnostics import ArchspecError, Diagnostic, did_you_mean, error
from archspec.lang.exprs import Budget, Evaluator, check_type
from archspec.lang.limits import MAX_ITERATIONS, MAX_LAYER_TENSORS, MAX_LAYERS, MAX_NESTING
from archspec.lang.network import Graph, OpNode, Scope, valid_label
from archspec.lang.plugins import lookup
from archspec.lang.source import Span
from archspec.lang.values import show, signature, type_name
from archspec.ops import REGISTRY, Ctx, OpDef, ShapeError
from archspec.ops.base import ACTIVATIONS, Shape, fmt_shape

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

    def input(self, ex: Expander, frame: Frame, span: Span) -> Value:
        return self.last

    def push(self, value: Value) -> None:
        self.last = value


class Branches(Flow):
    """``concat``: every statement reads the same input; outputs are collected."""

    def __init__(self, start: Value) -> None:
        super().__init__(start)
        self.outputs: list[Value] = []

    def input(self, ex: Expander, frame: Frame, span: Span) -> Value:
        return self.start

    def push(self, value: Value) -> None:
        self.outputs.append(value)


class DenseFlow(Flow):
    """``dense``: every statement reads concat(input, all earlier outputs)."""

    def __init__(self, start: Value) -> None:
        super().__init__(start)
        self.features: list[Value] = [start]

    def input(self, ex: Expander, frame: Frame, span: Span) -> Value:
        if len(self.features) == 1:
            return self.features[0]
        return ex.emit(frame, None, "concat", {}, tuple(self.features), span, synthetic=True)

    def push(self, value: Value) -> None:
        self.features.append(value)


class Expander:
    """Walks a Spec's IR and builds the Graph; one instance per expansion."""

    def __init__(self, spec: ir.Spec) -> None:
        self.spec = spec
        self.blocks = spec.all_blocks()
        self.graph = Graph(spec.name, {})
        self.stack: list[tuple[str, Span]] = []
        self.assigned: dict[str, tuple[Span, Value]] = {}
        self.read: set[str] = set()
        self.depth = 0
        self.iterations = 0
        self.budget = Budget()

    # ------------------------------------------------------------------ entry
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
        last = self.body(self.spec.body, Flow(first), frame)
        self._outputs(frame, last)
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

    @staticmethod
    def _typed(value: Any, p: ir.Param, span: Span) -> Any:
        try:
            return check_type(value, p.type)
        except TypeError:
            raise error("E402", f"`{p.name}` expects {p.type}, got {show(value)} "
                        f"({type_name(value)})", span, hint=f"declared at {p.span}") from None

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
        if not self.graph.outputs:
            raise error("E210", "every `output` condition is false: the network returns nothing",
                        self.spec.outputs[0].span, hint="make at least one output unconditional")
        used = set(self.graph.outputs.values())
        used.update(i for n in self.graph.nodes.values() for i in n.inputs)
        for key, (span, value) in self.assigned.items():
            if key not in self.read and value not in used:
                self.graph.warnings.append(Diagnostic(
                    "W201", f"`{key.rsplit('/', 1)[-1]}` is assigned but never used", span,
                    hint="use it as an input, list it in `output`, or remove it",
                    severity="warning"))

    # ------------------------------------------------------------------ statements
    def body(self, stmts: tuple[Any, ...], flow: Flow, frame: Frame) -> Value:
        if stmts and self.depth >= MAX_NESTING:
            raise error("E705", f"bodies and block calls nested more than {MAX_NESTING} deep",
                        stmts[0].span, hint="flatten the structure or use `repeat` / `for`")
        self.depth += 1
        try:
            for stmt in stmts:
                self.stmt(stmt, flow, frame)
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

    def chain(self, s: ir.Chain, cur: Value, frame: Frame) -> Value:
        if s.more:
            return self._unpack(s, cur, frame)
        label = self.label_text(s.label, frame) if s.label else None
        if len(s.elements) == 1 and isinstance(s.elements[0], ir.LayerCall):
            out = self.call(s.elements[0], cur, frame, label)
        else:
            inner = frame.sub(frame.child_name(label)) if label is not None else frame
            for el in s.elements:
                cur = self.element(el, cur, inner)
            out = cur
            if label is not None:
                self.graph.scopes[inner.prefix] = Scope(inner.prefix, "group", s.span, out)
        if label is not None:
            frame.values[label] = out
            if s.assign:
                self.assigned[f"{frame.prefix}/{label}"] = (s.label.span, out)
        return out

    def _unpack(self, s: ir.Chain, cur: Value, frame: Frame) -> Value:
        """``a, b = chunk(2)(x)``: one node per result of a multi-result op, named by the
        targets, each with its ``index``. The statement's value is the last result."""
        names = (self.label_text(s.label, frame), *s.more)
        (c,) = s.elements if len(s.elements) == 1 else (None,)
        op = lookup(c.callee) if isinstance(c, ir.LayerCall) else None
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
            out = self.emit(frame, name, op.name, attrs.model_copy(update={"index": i}),
                            inputs, c.span)
            frame.values[name] = out
            self.assigned[f"{frame.prefix}/{name}"] = (s.label.span, out)
        return out

    def label_text(self, label: ir.Label, frame: Frame) -> str:
        """A label's text, holes filled; what a hole pastes must keep it a valid layer name."""
        parts = [p if isinstance(p, str) else str(self.eval(p, frame)) for p in label.parts]
        text = "".join(parts)
        if not valid_label(text):
            raise error("E504", f"{text!r} cannot name a layer", label.span,
                        hint="a layer name is printable text without dots, quotes or "
                             "backslashes, and not empty")
        return text

    # ------------------------------------------------------------------ elements
    def element(self, el: Any, cur: Value, frame: Frame) -> Value:
        """Expand one chain element reading ``cur``; returns the value it produces."""
        return getattr(self, ir.rule_for(ELEMENTS, el, "expander"))(el, cur, frame)

    def _call(self, el: ir.LayerCall, cur: Value, frame: Frame) -> Value:
        return self.call(el, cur, frame, None)

    def _repeat_el(self, el: ir.Repeat, cur: Value, frame: Frame) -> Value:
        flow = Flow(cur)
        self._repeat(el, flow, frame)
        return flow.last

    def _group(self, el: ir.Group, cur: Value, frame: Frame) -> Value:
        return self.body(el.body, Flow(cur), frame)

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
        return self.emit(frame, None, "add", {}, (main, short), el.span, synthetic=True)

    def call(self, c: ir.LayerCall, cur: Value, frame: Frame, label: str | None) -> Value:
        if c.callee in self.blocks:
            return self.block_call(c, cur, frame, label)
        op = lookup(c.callee)
        if op is None:
            raise error("E201", f"unknown op or block `{c.callee}`", c.span,
                        hint=did_you_mean(c.callee, [*REGISTRY, *self.blocks]) or
                        "see `archspec ops` for the list of ops")
        positional = [a for a in c.args if a.name is None]
        if op.inputs[1] is None and c.inputs is None and positional:
            inputs = tuple(self._ref_expr(a.value, frame) for a in positional)
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

    def _inputs(self, c: ir.LayerCall, cur: Value, frame: Frame) -> tuple[Value, ...]:
        if c.inputs is None:
            return (cur,)
        spans = c.input_spans or (c.span,) * len(c.inputs)
        return tuple(self._ref(n, s, frame) for n, s in zip(c.inputs, spans))

    def _ref_expr(self, e: Any, frame: Frame) -> Value:
        if isinstance(e, ir.InRef):
            return self._ref("in", e.span, frame)
        if not isinstance(e, ir.Var):
            raise error("E211", "inputs of a merge op must be layer names", e.span,
                        hint="e.g. `y = add(a, b)`; give attributes by keyword")
        return self._ref(e.name, e.span, frame)

    def _ref(self, name: str, span: Span, frame: Frame) -> Value:
        if name == "in" and frame.in_value is not None:
            return frame.in_value
        if name in frame.values:
            self.read.add(f"{frame.prefix}/{name}")
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

    def _op_attrs(self, op: OpDef, args: tuple[ir.Arg, ...], frame: Frame,
                  c: ir.LayerCall) -> dict[str, Any]:
        values: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        pos = [a for a in args if a.name is None]
        if len(pos) > len(op.positional):
            extra = pos[len(op.positional)]
            raise error("E231", f"`{op.name}` takes at most {len(op.positional)} positional "
                        f"argument(s), got {len(pos)}", extra.span,
                        hint=f"signature: {signature(op)}")
        for name, a in zip(op.positional, pos):
            values[name], spans[name] = self.eval(a.value, frame), a.span
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
            values[a.name], spans[a.name] = self.eval(a.value, frame), a.span
        return self._validate(op, values, spans, c)

    def _validate(self, op: OpDef, values: dict[str, Any], spans: dict[str, Span],
                  c: ir.LayerCall) -> Any:
        try:
            return op.attrs.model_validate(values)
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
        ins = self._inputs(c, cur, frame) if c.inputs else (cur,)
        if len(ins) != 1:
            raise error("E216", f"block `{block.name}` takes one input (`in`), got {len(ins)}",
                        c.span, hint="merge the inputs first (`add`, `concat`, `mul`) or write "
                                     "the block's layers inline with DAG inputs")
        (inp,) = ins
        args = self._bind(block, c, frame, self.graph.shape_of(inp))
        env = {**self.graph.params, **args}
        path = frame.path(frame.child_name(label))
        inner = Frame(path, env, {"in": inp}, inp, root=path)
        self.stack.append((block.name, c.span))
        try:
            out = self.body(block.body, Flow(inp), inner)
        except ArchspecError as exc:
            raise ArchspecError(_called_from(d, block.name, inner.prefix, c.span)
                                for d in exc.diagnostics) from None
        finally:
            self.stack.pop()
        self.graph.scopes[inner.prefix] = Scope(inner.prefix, block.name, c.span, out, args)
        self.graph.block_inits += [(inner.prefix, rule, env) for rule in block.inits]
        return out

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
            given[p.name] = (self.eval(a.value, frame), a.span)
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
            given[a.name] = (self.eval(a.value, frame), a.span)
        return self._defaults(block, given, c, in_shape)

    def _defaults(self, block: ir.BlockDef, given: dict[str, tuple[Any, Span]],
                  c: ir.LayerCall, in_shape: Shape) -> dict[str, Any]:
        env: dict[str, Any] = dict(self.graph.params)
        for p in block.params:
            if p.name in given:
                value, span = given[p.name]
            elif p.default is not None:
                value, span = Evaluator(env, in_shape, self.budget)(p.default), p.span
            else:
                raise error("E234", f"block `{block.name}` needs `{p.name}`", c.span,
                            hint=f"parameters: {', '.join(_param_sig(q) for q in block.params)}")
            env[p.name] = self._typed(value, p, span)
        return {p.name: env[p.name] for p in block.params}

    # ------------------------------------------------------------------ nodes
    def emit(self, frame: Frame, label: str | None, opname: str, attrs: Any,
             inputs: tuple[Value, ...], span: Span, synthetic: bool = False) -> Value:
        if len(self.graph.nodes) >= MAX_LAYERS:
            raise error("E703", f"more than {MAX_LAYERS:,} layers", span,
                        hint="`repeat` and `for` counts multiply when nested")
        op = REGISTRY[opname]
        if isinstance(attrs, dict):
            attrs = op.attrs.model_validate(attrs)
        name = self._unique(frame, opname) if synthetic else frame.child_name(label)
        node_id = frame.path(name)
        if node_id in self.graph.nodes or node_id in self.graph.inputs:
            first = self.graph.nodes.get(node_id)
            raise error("E213", f"duplicate layer name `{node_id}`", span,
                        hint="give each layer in a block a different name",
                        notes=(("first defined here", first.span),) if first else ())
        shapes = tuple(self.graph.shape_of(i) for i in inputs)
        lo, hi = op.inputs
        if len(inputs) < lo or (hi is not None and len(inputs) > hi):
            raise error("E214", f"`{opname}` takes {lo}{'+' if hi is None else ''} input(s), "
                        f"got {len(inputs)}", span, hint="list its inputs: `op(...)(a, b)`")
        shape = self._infer(op, shapes, attrs, span, inputs)
        dropped = op.warn(shapes, attrs)
        if dropped:
            notes = tuple((f"in block `{name}` called here", where)
                          for name, where in reversed(self.stack))
            self.graph.warnings.append(Diagnostic(
                "W301", f"layer `{node_id}` ({opname}) never reads some input: "
                + "; ".join(dropped), span, hint="adjust the padding, stride or input size",
                severity="warning", notes=notes))
        held = op.cost(Ctx(shapes, shape, attrs))
        if held.params + held.buffers > MAX_LAYER_TENSORS:
            raise error("E708", f"`{node_id}` ({opname}) holds {held.params + held.buffers:,} "
                        f"parameter and buffer elements; at most {MAX_LAYER_TENSORS:,}", span,
                        hint="a layer this large cannot be built; check its sizes")
        if op.features_last and len(shapes[0]) >= 3 and (src := self._map_source(inputs[0])):
            self.graph.warnings.append(Diagnostic(
                "W302", f"`{node_id}` ({opname}) maps the last dim of a {fmt_shape(shapes[0])} "
                f"map from `{src}` ({self.graph.nodes[src].op}): its width, not its channels",
                span, hint="add `flatten` (or a global pooling and `flatten`) before it; to map "
                           "the channels, put them last first (`permute([1, 2, 0])`)",
                severity="warning"))
        self.graph.nodes[node_id] = OpNode(node_id, op.name, attrs, inputs, shapes, shape, span,
                                           synthetic)
        return node_id

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
        while frame.path(name) in self.graph.nodes:
            name, n = f"{base}_{n}", n + 1
        return name

    def _infer(self, op: OpDef, shapes: tuple[Shape, ...], attrs: Any, span: Span,
               inputs: tuple[Value, ...]) -> Shape:
        try:
            return op.infer(shapes, attrs)
        except ShapeError as exc:
            notes: tuple[tuple[str, Span], ...] = ()
            if len(inputs) > 1:
                notes = tuple((f"input {i + 1} `{v}` has shape {fmt_shape(s)}",
                               self._where(v)) for i, (v, s) in enumerate(zip(inputs, shapes)))
            raise error(exc.code, f"{exc.message} (input {' and '.join(map(fmt_shape, shapes))})"
                        if len(inputs) > 1 else exc.message, span, hint=exc.hint,
                        notes=notes) from None

    def _where(self, value: Value) -> Span:
        if value in self.graph.nodes:
            return self.graph.nodes[value].span
        return next(d.span for d in self.spec.inputs if d.name == value)

    def eval(self, e: Any, frame: Frame) -> Any:
        in_shape = self.graph.shape_of(frame.in_value) if frame.in_value else None
        return Evaluator(frame.env, in_shape, self.budget)(e)


# The expander method for each chain element (a test checks it covers ir.Element).
ELEMENTS: dict[type, str] = {ir.LayerCall: "_call", ir.Repeat: "_repeat_el", ir.Group: "_group",
                             ir.Concat: "_concat", ir.Dense: "_dense", ir.Residual: "_residual"}


def _called_from(d: Diagnostic, block: str, path: str, span: Span) -> Diagnostic:
    """Add a "called from" note to a diagnostic raised inside a block's body."""
    note = (f"in block `{block}` (`{path}`) called here", span)
    return replace(d, notes=(*d.notes, note))


def _param_sig(p: ir.Param) -> str:
    return p.name + ("" if p.default is None else "=...")


def expand(spec: ir.Spec) -> Graph:
    """Expand ``spec`` into a flat, shape-checked :class:`Graph` (every ``init`` rule checked
    to target some layer)."""
    from archspec.lang.initializers import block_plans, plan

    graph = Expander(spec).run()
    plan(graph, spec.inits)
    block_plans(graph)
    return graph

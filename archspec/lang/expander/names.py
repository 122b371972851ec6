"""Names: dotted labels (``convs.0``, ``stages.0.blocks.{i}``) and the groups they open or
re-open, assignments that rebind a name (a value carried from one loop step to the next) and
``each(name)``, and the check that a layer is not given where an argument value belongs."""

from __future__ import annotations

from typing import Any

from archspec.lang import ir
from archspec.lang.diagnostics import did_you_mean, error
from archspec.lang.expander.state import ExpanderState, Frame, Value
from archspec.lang.network import Scope, valid_label
from archspec.lang.source import Span


class NamesMixin(ExpanderState):
    """Turns labels into paths, keeps the groups and the values assigned to each name."""

    # ------------------------------------------------------------------ labels and groups
    def label_path(self, label: ir.Label, frame: Frame) -> tuple[str, ...]:
        """A label's segments (``convs.{i}`` -> ``("convs", "2")``), holes filled; a hole
        pastes into one segment, and every segment must be a valid layer name."""
        segments = [""]
        for part in label.parts:
            if isinstance(part, str):
                head, *rest = part.split(".")
                segments[-1] += head
                segments += rest
            else:
                segments[-1] += str(self.eval(part, frame))
        for text in segments:
            if not valid_label(text):
                raise error("E504", f"{text!r} cannot name a layer", label.span,
                            hint="a layer name is printable text without dots, quotes or "
                                 "backslashes, and not empty")
        return tuple(segments)

    def taken(self, path: str) -> bool:
        """Whether ``path`` already names a layer, an input, a block call or a group."""
        return (path in self.graph.nodes or path in self.graph.inputs
                or path in self.graph.scopes or path in self.groups)

    def claim(self, path: str, span: Span) -> None:
        """Refuse ``path`` for a new layer, block call or group when something has it."""
        if not self.taken(path):
            return
        node = self.graph.nodes.get(path)
        scope = self.graph.scopes.get(path)
        kind = ("layer" if node else "graph input" if path in self.graph.inputs else
                "block call" if scope and scope.kind != "group" else "group")
        where = node.span if node else scope.span if scope else None
        raise error("E213", f"`{path}` is already a {kind}", span,
                    hint="give each layer, group and block call its own name (a group's "
                         "label written again continues that group)",
                    notes=(("first defined here", where),) if where else ())

    def open_group(self, frame: Frame, name: str, span: Span, reopen: bool = True) -> Frame:
        """The naming frame of group ``name`` inside ``frame``: the one an earlier statement
        opened (``reopen``), whose numbering it continues, or a new one in the next place."""
        path = frame.path(name)
        if reopen and path in self.groups:
            return self.groups[path]
        self.claim(path, span)
        frame.child_name(name)
        inner = self.groups[path] = frame.sub(name)
        return inner

    def close_group(self, inner: Frame, span: Span, out: Value) -> None:
        """Record group ``inner`` as a scope whose output is ``out`` (its latest value)."""
        first = self.graph.scopes.get(inner.prefix)
        self.graph.scopes[inner.prefix] = Scope(inner.prefix, "group",
                                                first.span if first else span, out)

    # ------------------------------------------------------------------ assigned names
    def assign_name(self, frame: Frame, name: str) -> str:
        """The layer name an assignment to ``name`` gives: ``name`` the first time; when it
        rebinds the name (a loop-carried value), the next free ``name_1``, ``name_2``..."""
        return self._unique(frame, name) if f"{frame.prefix}/{name}" in self.assigned else name

    def bind(self, frame: Frame, name: str, span: Span, out: Value) -> None:
        """Assign ``out`` to ``name``; ``each(name)`` reads every value it was given."""
        frame.values[name] = out
        self.assigned[f"{frame.prefix}/{name}"] = (span, out)
        self.bindings.setdefault((frame.root, name), []).append(out)

    def each(self, name: str, span: Span, frame: Frame) -> tuple[Value, ...]:
        """``each(name)``: the values assigned to ``name`` in this block so far, in order."""
        values = self.bindings.get((frame.root, name))
        if not values:
            known = [n for root, n in self.bindings if root == frame.root]
            raise error("E212", f"`each({name})`: `{name}` is not assigned before here", span,
                        hint=did_you_mean(name, known) or "`each(name)` reads every value "
                        "given to `name = ...` earlier in the same block, e.g. in a loop")
        self.read[f"{frame.prefix}/{name}"] = None
        return tuple(values)

    # ------------------------------------------------------------------ arguments
    def arg_value(self, a: ir.Arg, frame: Frame, c: ir.LayerCall) -> Any:
        """The value of argument ``a`` of call ``c``; a layer named there (``bn(convs.0)``)
        is an error that shows the DAG form, which gives a layer as an input."""
        name = ir.ref_name(a.value)
        if name is not None and self._names_layer(name, frame):
            what = ("is the block's input" if name == "in" else
                    "names layers" if name.startswith("each(") else "is a layer")
            form = f"{c.callee}({'...' if len(c.args) > 1 else ''})({name})"
            raise error("E217", f"`{name}` {what}, not a value for an argument of "
                        f"`{c.callee}`", a.value.span,
                        hint=f"inputs go in a second pair of parentheses: `{form}` applies "
                             f"`{c.callee}` to `{name}`")
        return self.eval(a.value, frame)

    def _names_layer(self, name: str, frame: Frame) -> bool:
        """Whether DAG-input text ``name`` reads a layer (or ``in``) rather than a value."""
        if name == "in":
            return frame.in_value is not None
        if name.startswith("each("):
            return True
        if name.split(".")[0] in frame.env:
            return False
        path = f"{frame.root}.{name}" if frame.root else name
        return name in frame.values or path in self.graph.nodes or path in self.graph.scopes

"""Writing merged classes as source: each class's constructor (its members and, for the
network, its weight initialisation) and its forward, every name from one
:class:`~archspec.backends.naming.Namespace`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archspec.backends.eject.classes import (
    ClassDef,
    Holder,
    InitGroup,
    Member,
    Param,
    Ref,
    Seq,
    Step,
    Value,
)
from archspec.backends.eject.source import (
    WIDTH,
    assignment,
    attribute,
    docstring,
    function_source,
    init_calls,
    literal,
    module_source,
    packed,
    special_call,
    wrap_call,
)
from archspec.backends.naming import Namespace
from archspec.ops import Function, Learned, Module


class Writer:
    """Writes merged classes as source; helper class names are taken first. Lines come with
    their indentation (classes are at the top level)."""

    def __init__(self, classes: list[ClassDef], helpers: tuple[str, ...] = ()) -> None:
        self.classes = classes
        self.names = Namespace(taken=(*helpers, "build"))
        last = len(classes) - 1
        self.class_names = [self.names.class_name(c.label, "Network" if i == last else "Group")
                            for i, c in enumerate(classes)]
        self.params = [self._param_names(c) for c in classes]

    def _param_names(self, cls: ClassDef) -> dict[str, str]:
        scope = self.names.child()
        return {label: scope.name(label) for label, _ in cls.params}

    def source(self, member: Member, value: Callable[[Any], str], start: int, indent: int,
               tail: int = 0) -> str:
        """The expression building ``member`` from column ``start`` of a line indented by
        ``indent``, with ``tail`` characters after it (holders are built by statements)."""
        if isinstance(member, Module | Learned):
            call = member.factory if isinstance(member, Learned) else member
            return module_source(call, value, start, tail)
        if isinstance(member, Seq):
            items = [self.source(m, value, indent + 4, indent + 4, 1) for m in member.items]
            flat = f"nn.Sequential({', '.join(items)})"
            if "\n" not in flat and start + len(flat) + tail <= WIDTH:
                return flat
            pad = " " * (indent + 4)
            return "".join(["nn.Sequential(\n", *(f"{pad}{item},\n" for item in items),
                            " " * indent, ")"])
        assert isinstance(member, Ref)
        names = self.params[member.cls]
        args = [f"{names[label]}={value(v)}" for label, v in member.args]
        return wrap_call(self.class_names[member.cls], args, start, tail)

    def member_lines(self, base: str, members: tuple[tuple[str, Member], ...],
                     value: Callable[[Any], str], indent: int) -> list[str]:
        """Statements registering ``members`` under ``base``."""
        out = []
        for label, member in members:
            before, after = assignment(base, label, isinstance(member, Learned))
            if isinstance(member, Holder):
                out.append(f"{' ' * indent}{before}nn.Module(){after}")
                out += self.member_lines(attribute(base, label), member.members, value, indent)
                continue
            source = self.source(member, value, indent + len(before), indent, len(after))
            out.append(f"{' ' * indent}{before}{source}{after}")
        return out

    def init_lines(self, groups: tuple[InitGroup, ...], scope: Namespace,
                   indent: int) -> list[str]:
        """The network's weight initialisation: one ``for`` per group of layers (of modules, or
        of learnable tensors, read from ``named_parameters``)."""
        if not groups:
            return []
        layers, tensors = scope.name("layers"), scope.name("tensors")
        path, pad = scope.name("path"), " " * indent
        out = [f"{pad}with torch.no_grad():  # the spec's `init` rules, in layer order"]
        if not all(group.tensors for group in groups):
            out.append(f"{pad}    {layers} = dict(self.named_modules())")
        if any(group.tensors for group in groups):
            out.append(f"{pad}    {tensors} = dict(self.named_parameters())")
        for group in groups:
            held = tensors if group.tensors else layers
            if len(group.paths) == 1:
                out += init_calls(f"{held}[{group.paths[0]!r}]", group.init, indent + 4,
                                  group.tensors)
                continue
            out += [f"{pad}    for {path} in (", *packed([repr(p) for p in group.paths],
                                                         indent + 8), f"{pad}    ):",
                    *init_calls(f"{held}[{path}]", group.init, indent + 8, group.tensors)]
        return out

    def forward_lines(self, cls: ClassDef) -> list[str]:
        """The ``forward`` method: one statement per step."""
        scope = self.names.child()
        names: dict[Value, str] = {("", label): scope.name(label) for label in cls.inputs}
        inputs = ["self", *(names["", label] for label in cls.inputs)]
        out = [f"    {wrap_call('def forward', inputs, 4, 1)}:"]
        kept = tuple((name, v) for name, v in cls.result if name not in cls.train)
        late = _train_only(cls.forward, kept, cls.result) if cls.train else set()
        early = bool(late)  # the eval return is still to be written
        for step in sorted(cls.forward, key=lambda s: s.out in late):  # stable: eval first
            if early and step.out in late:
                out += ["        if not self.training:  # the eval outputs",
                        f"            return {_returned(kept, names)}"]
                early = False
            args = [names[v] for v in step.args]
            if step.learned is not None:
                args.append(_attr_path(step.learned))
            names[step.out] = scope.name(step.hint)
            start = 8 + len(names[step.out]) + 3
            if isinstance(step.callee, Function):
                expression = function_source(step.callee, args, start)
            elif step.module is not None:
                expression = special_call(_attr_path(step.callee), args, step.module, start)
            else:
                expression = wrap_call(_attr_path(step.callee), args, start)
            out.append(f"        {names[step.out]} = {expression}")
        return [*out, f"        return {_returned(cls.result if late else kept, names)}"]

    def class_lines(self, index: int) -> list[str]:
        """The source of class ``index``."""
        cls, params = self.classes[index], self.params[index]

        def value(v: Any) -> str:
            return params[v.label] if isinstance(v, Param) else literal(v)

        scope = self.names.child()
        scope.taken.update(params.values())
        defaults = dict(cls.defaults)
        signature = ["self", *(f"{params[label]}: {note}" + (
            f" = {literal(defaults[label])}" if label in defaults else "")
            for label, note in cls.params)]
        return [f"class {self.class_names[index]}(nn.Module):", *docstring([cls.doc], 4), "",
                f"    {wrap_call('def __init__', signature, 4, 9)} -> None:",
                "        super().__init__()",
                *self.member_lines("self", cls.members, value, 8),
                *self.init_lines(cls.inits, scope, 8), "", *self.forward_lines(cls)]


def _train_only(steps: tuple[Step, ...], kept: tuple[tuple[str, Value], ...],
                result: tuple[tuple[str, Value], ...]) -> set[Value]:
    """The values of the steps that only the training-only outputs read (``result`` less
    ``kept``, directly or through other steps): ``forward`` runs them after it has returned
    the eval outputs in eval mode."""
    made = {step.out: step for step in steps}

    def upstream(values: list[Value]) -> set[Value]:
        seen: set[Value] = set()
        while values:
            v = values.pop()
            if v in made and v not in seen:
                seen.add(v)
                values.extend(made[v].args)
        return seen

    return upstream([v for _, v in result]) - upstream([v for _, v in kept])


def _returned(result: tuple[tuple[str, Value], ...], names: dict[Value, str]) -> str:
    """What ``forward`` returns: one output bare, several as a dict in order."""
    if len(result) == 1:
        return names[result[0][1]]
    return "{" + ", ".join(f"{name!r}: {names[v]}" for name, v in result) + "}"


def _attr_path(path: tuple[str, ...]) -> str:
    out = "self"
    for label in path:
        out = attribute(out, label)
    return out

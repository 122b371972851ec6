"""Eject a spec to standalone PyTorch source: one ``nn.Module`` class per block, named like it.

The generated file imports only torch. Its modules sit at the spec's dotted paths, so a
state_dict of the compiled spec (or torchvision's, for the torchvision specs) loads strictly.
A scope (block call or labelled group) becomes:

- ``nn.Sequential(...)`` when it is a plain chain of numbered items (``layer1``, ``features``);
- a class when it has one input from outside and only its output is used outside; identical
  scopes share one class (``Basic``; variants are ``Basic2``, ``Basic3``...);
- otherwise a plain ``nn.Module()`` holder whose layers are written into the parent's forward.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from archspec import ir
from archspec.backends.torch import lower, may_overwrite_input
from archspec.expander import expand
from archspec.graph import Graph
from archspec.initializers import resolve
from archspec.ops import Function, Module


@dataclass
class Scope:
    """A node of the module tree: leaf layers and sub-scopes, in graph order."""

    path: str
    kind: str
    members: list[str] = field(default_factory=list)  # child local names, in order
    leaves: dict[str, str] = field(default_factory=dict)  # local name -> node id
    scopes: dict[str, Scope] = field(default_factory=dict)  # local name -> sub-scope


def _parent(node_id: str) -> tuple[str, str]:
    head, _, tail = node_id.rpartition(".")
    return head, tail


def build_tree(graph: Graph) -> Scope:
    """The module hierarchy implied by the dotted node ids."""
    root = Scope("", graph.name)
    index = {"": root}
    for node in graph:
        parent, name = _parent(node.id)
        scope = _ensure(index, parent, graph)
        scope.leaves[name] = node.id
        scope.members.append(name)
    return root


def _ensure(index: dict[str, Scope], path: str, graph: Graph) -> Scope:
    if path in index:
        return index[path]
    parent, name = _parent(path)
    holder = _ensure(index, parent, graph)
    kind = graph.scopes[path].kind if path in graph.scopes else "group"
    scope = index[path] = Scope(path, kind)
    holder.scopes[name] = scope
    holder.members.append(name)
    return scope


def qualified_source(target: str) -> str:
    """How generated code names a qualified target: ``torch.nn.Conv2d`` -> ``nn.Conv2d``."""
    if target.startswith("torch.nn.") and target.count(".") == 2:
        return "nn." + target.rsplit(".", 1)[1]
    if target.startswith(("archspec.backends.modules.", "builtins.")):
        return target.rsplit(".", 1)[1]
    return target


def module_source(call: Module) -> str:
    """``nn.Conv2d(3, 64, 7, stride=2)``: the constructor call a :class:`Module` describes."""
    args = [repr(a) for a in call.args] + [f"{k}={v!r}" for k, v in call.kwargs]
    return f"{qualified_source(call.target)}({', '.join(args)})"


_OPERATORS = {"operator.add": "+", "operator.mul": "*"}
_INPLACE = {"operator.iadd": "add_", "operator.imul": "mul_"}


def _function_source(call: Function, args: list[str]) -> str:
    if call.target in _OPERATORS:
        return f" {_OPERATORS[call.target]} ".join(args)
    if call.target in _INPLACE:
        return f"{args[0]}.{_INPLACE[call.target]}({args[1]})"
    parts = [f"[{', '.join(args)}]"] if call.as_list else list(args)
    parts += [f"{k}={v!r}" for k, v in call.kwargs]
    return f"{qualified_source(call.target)}({', '.join(parts)})"


def _attr(base: str, names: list[str]) -> str:
    out = base
    for n in names:
        out = f"{out}.{n}" if n.isidentifier() and not keyword.iskeyword(n) else \
            f"getattr({out}, {n!r})"
    return out


class Ejector:
    """Writes the classes of one graph."""

    def __init__(self, graph: Graph, spec: ir.Spec | None) -> None:
        self.graph = graph
        self.spec = spec
        self.readers = graph.consumers()
        self.lowered = {n.id: lower(n, may_overwrite_input(graph, n, self.readers))
                        for n in graph}
        self.classes: dict[str, str] = {}  # class body (named "{NAME}") -> class name
        self.order: list[str] = []
        self.instances: dict[str, list[str]] = {}  # class body -> scope paths using it

    # ---------------------------------------------------------------- analysis of scopes
    def node_ids(self, scope: Scope) -> list[str]:
        out = list(scope.leaves.values())
        for sub in scope.scopes.values():
            out += self.node_ids(sub)
        return out

    def boundary(self, scope: Scope) -> tuple[list[str], set[str]]:
        """External inputs (in first-use order) and the values used outside the scope."""
        inside = set(self.node_ids(scope))
        ins: list[str] = []
        for node_id in sorted(inside, key=list(self.graph.nodes).index):
            for src in self.graph.nodes[node_id].inputs:
                if src not in inside and src not in ins:
                    ins.append(src)
        outs = {v for v in inside if v in self.graph.outputs.values()
                or any(r not in inside for r in self.readers[v])}
        return ins, outs

    def is_unit(self, scope: Scope) -> bool:
        ins, outs = self.boundary(scope)
        return len(ins) == 1 and len(outs) == 1

    def is_chain(self, scope: Scope) -> bool:
        if scope.members != [str(i) for i in range(len(scope.members))]:
            return False
        prev = self.boundary(scope)[0][0]
        for name in scope.members:
            if name in scope.leaves:
                node = self.graph.nodes[scope.leaves[name]]
                if not isinstance(self.lowered[node.id], Module) or node.inputs != (prev,):
                    return False
                prev = node.id
            else:
                sub = scope.scopes[name]
                if not self.is_unit(sub) or self.boundary(sub)[0] != [prev]:
                    return False
                prev = next(iter(self.boundary(sub)[1]))
        return True

    # ---------------------------------------------------------------- code
    def constructor(self, scope: Scope) -> str:
        """Source that builds ``scope`` as a module (Sequential, class, or holder)."""
        if self.is_unit(scope) and self.is_chain(scope):
            items = [self.member_source(scope, m) for m in scope.members]
            return "nn.Sequential(" + ", ".join(items) + ")"
        if self.is_unit(scope):
            return f"{self.define_class(scope)}()"
        return "nn.Module()"

    def member_source(self, scope: Scope, name: str) -> str:
        if name in scope.leaves:
            return module_source(self.lowered[scope.leaves[name]])
        return self.constructor(scope.scopes[name])

    def init_lines(self, scope: Scope, target: str) -> list[str]:
        lines = []
        for name in scope.members:
            if name in scope.leaves and not isinstance(self.lowered[scope.leaves[name]],
                                                       Module):
                continue
            lines.append(f"{target}.add_module({name!r}, {self.member_source(scope, name)})"
                         if not name.isidentifier() or keyword.iskeyword(name)
                         else f"{_attr(target, [name])} = {self.member_source(scope, name)}")
            if name in scope.scopes and self.constructor(scope.scopes[name]) == "nn.Module()":
                lines += self.init_lines(scope.scopes[name], _attr(target, [name]))
        return lines

    def forward_lines(self, scope: Scope, names: dict[str, str], prefix: list[str]) -> list[str]:
        """Statements computing every value of ``scope`` (inlined holders recurse)."""
        lines = []
        for name in scope.members:
            if name in scope.leaves:
                node = self.graph.nodes[scope.leaves[name]]
                args = [names[i] for i in node.inputs]
                var = self.var(names, node.id, [*prefix, name])
                low = self.lowered[node.id]
                call = (f"{_attr('self', [*prefix, name])}({', '.join(args)})"
                        if isinstance(low, Module) else _function_source(low, args))
                lines.append(f"{var} = {call}")
                continue
            sub = scope.scopes[name]
            if self.constructor(sub) == "nn.Module()":
                lines += self.forward_lines(sub, names, [*prefix, name])
                continue
            (src,), outs = self.boundary(sub)
            out = next(iter(outs))
            var = self.var(names, out, [*prefix, name])
            lines.append(f"{var} = {_attr('self', [*prefix, name])}({names[src]})")
        return lines

    @staticmethod
    def var(names: dict[str, str], value: str, path: list[str]) -> str:
        base = "_".join(path) or "y"
        base = base if base[0].isalpha() else f"x{base}"
        base = f"{base}_" if keyword.iskeyword(base) else base
        taken = set(names.values())
        var, n = base, 2
        while var in taken:
            var, n = f"{base}{n}", n + 1
        names[value] = var
        return var

    def define_class(self, scope: Scope, inputs: list[str] | None = None,
                     outputs: dict[str, str] | None = None, extra_init: list[str] = ()) -> str:
        ins = inputs if inputs is not None else self.boundary(scope)[0]
        names: dict[str, str] = {}
        params = []
        for i, src in enumerate(ins):
            arg = src if inputs is not None else ("x" if len(ins) == 1 else f"x{i}")
            names[src] = arg
            params.append(arg)
        body = self.forward_lines(scope, names, [])
        if outputs is None:
            ret = names[next(iter(self.boundary(scope)[1]))]
        elif len(outputs) == 1:
            ret = names[next(iter(outputs.values()))]
        else:
            ret = "{" + ", ".join(f"{k!r}: {names[v]}" for k, v in outputs.items()) + "}"
        init = self.init_lines(scope, "self") + list(extra_init)
        text = "\n".join([
            "class {NAME}(nn.Module):",
            f'    """{self._doc(scope)}"""', "",
            "    def __init__(self) -> None:", "        super().__init__()",
            *(f"        {line}" for line in init), "",
            f"    def forward(self, {', '.join(params)}):",
            *(f"        {line}" for line in body), f"        return {ret}"])
        return self._name(text, scope)

    def _doc(self, scope: Scope) -> str:
        if scope.path == "":
            return f"Network `{self.graph.name}`, generated by archspec."
        if scope.kind == "group":
            return f"The `{scope.path.rsplit('.', 1)[-1]}` group of `{self.graph.name}`."
        return f"Block `{scope.kind}`."

    def _name(self, text: str, scope: Scope) -> str:
        self.instances.setdefault(text, []).append(scope.path)
        if text in self.classes:
            return self.classes[text]
        base = scope.kind if scope.kind != "group" else scope.path.rsplit(".", 1)[-1]
        base = "".join(p[:1].upper() + p[1:] for p in base.split("_") if p) or "Group"
        base = base if base[0].isalpha() else f"Group{base}"
        used = set(self.classes.values())
        name, n = base, 2
        while name in used:
            name, n = f"{base}{n}", n + 1
        self.classes[text] = name
        self.order.append(text)
        return name

    def init_weights_lines(self) -> list[str]:
        if self.spec is None or not self.spec.inits:
            return []
        lines = ["with torch.no_grad():", "    for m in self.modules():"]
        by_op = {n.op: qualified_source(self.lowered[n.id].target) for n in self.graph
                 if isinstance(self.lowered[n.id], Module)}
        for rule in self.spec.inits:
            if rule.op not in by_op:
                continue
            func, kwargs, bias = resolve(rule)
            lines.append(f"        if type(m) is {by_op[rule.op]}:")
            if func is not None:
                args = "".join(f", {k}={v!r}" for k, v in kwargs.items())
                lines.append(f"            nn.init.{func}(m.weight{args})")
            if bias is not None:
                lines.append("            if m.bias is not None:")
                lines.append(f"                nn.init.constant_(m.bias, {bias!r})")
            if func is None and bias is None:
                lines.append("            pass")
        return lines


_INT = re.compile(r"(?<![\w.'\"])\d+(?![\w.'\"])")


def _skeleton(text: str) -> tuple[str, list[int]]:
    """A class body with its integer literals taken out, and those literals."""
    values = [int(m.group()) for m in _INT.finditer(text)]
    return _INT.sub("#", text), values


class Parametrizer:
    """Merges classes that differ only in integer constants into one class whose constructor
    takes those constants, named after the block parameter they equal (``planes``) or
    ``in_channels``; the classes' users are rewritten to pass them (``Basic(planes=128)``)."""

    def __init__(self, ej: Ejector) -> None:
        self.ej = ej
        self.calls: dict[str, str] = {}  # old class name -> constructor call

    def run(self) -> list[str]:
        groups: dict[str, list[str]] = {}
        for text in self.ej.order:
            groups.setdefault(_skeleton(self.rewrite(text))[0], []).append(text)
        out = []
        for texts in groups.values():
            out.append(self.merge(texts) if len(texts) > 1 else
                       self.rewrite(texts[0]).replace("{NAME}", self.ej.classes[texts[0]]))
        return out

    def rewrite(self, text: str) -> str:
        for old, call in self.calls.items():
            text = re.sub(rf"\b{old}\(\)", call, text)
        return text

    def merge(self, texts: list[str]) -> str:
        name = self.ej.classes[texts[0]]
        rows = [_skeleton(self.rewrite(t))[1] for t in texts]
        columns = list(zip(*rows))
        names: dict[tuple[int, ...], str] = {}
        holes = []
        for col in columns:
            if len(set(col)) == 1:
                holes.append(str(col[0]))
                continue
            if col not in names:
                names[col] = self.param_name(texts, col, set(names.values()))
            holes.append(names[col])
        params = list(dict.fromkeys(names.values()))
        for t in texts:
            old = self.ej.classes[t]
            values = {n: v for v, n in zip(rows[texts.index(t)], _hole_names(columns, names))
                      if n}
            self.calls[old] = f"{name}(" + ", ".join(f"{p}={values[p]}" for p in params) + ")"
        skeleton = _skeleton(self.rewrite(texts[0]))[0].replace("{NAME}", name)
        parts = skeleton.split("#")
        body = parts[0] + "".join(h + p for h, p in zip(holes, parts[1:]))
        signature = ", ".join(f"{p}: int" for p in params)
        return body.replace("def __init__(self) -> None:",
                            f"def __init__(self, {signature}) -> None:")

    def param_name(self, texts: list[str], col: tuple[int, ...], taken: set[str]) -> str:
        paths = [self.ej.instances[t][0] for t in texts]
        scopes = [self.ej.graph.scopes.get(p) for p in paths]
        if all(s is not None for s in scopes):
            for key in scopes[0].args:
                if key not in taken and all(s.args.get(key) == v for s, v in zip(scopes, col)):
                    return key
            ins = [self.ej.graph.shape_of(self.ej.graph.nodes[_first(self.ej, p)].inputs[0])[0]
                   for p in paths]
            if "in_channels" not in taken and tuple(ins) == col:
                return "in_channels"
        n = len(taken)
        while f"n{n}" in taken:
            n += 1
        return f"n{n}"


def _hole_names(columns: list[tuple[int, ...]], names: dict[tuple[int, ...], str]) -> list[str]:
    return [names.get(c, "") if len(set(c)) > 1 else "" for c in columns]


def _first(ej: Ejector, path: str) -> str:
    return next(n.id for n in ej.graph if n.id.startswith(path + "."))


def eject(spec: ir.Spec, source_name: str = "") -> str:
    """Standalone PyTorch source for ``spec``; its last class is the network."""
    graph = expand(spec)
    ej = Ejector(graph, spec)
    tree = build_tree(graph)
    top = ej.define_class(tree, inputs=list(graph.inputs), outputs=graph.outputs,
                          extra_init=ej.init_weights_lines())
    classes = Parametrizer(ej).run()
    origin = f" from {source_name}" if source_name else ""
    head = [f'"""Network `{graph.name}`, generated by archspec{origin}.', "",
            "Standalone: imports only torch. Inputs (per sample): "
            + ", ".join(f"{k} {list(v)}" for k, v in graph.inputs.items()) + '."""', "",
            "import torch", "from torch import nn", ""]
    return "\n".join(head + ["\n" + c + "\n" for c in classes]
                     + [f"\ndef build() -> {top}:", f'    """A new `{graph.name}` network."""',
                        f"    return {top}()", ""])

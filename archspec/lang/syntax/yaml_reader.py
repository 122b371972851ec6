"""Reading the YAML form (yaml_form.py describes it) into the IR, with PyYAML's safe composer
only, positions kept for diagnostics; sizes, depth and tags are checked before composing."""

from __future__ import annotations

from typing import Any

import yaml

from archspec.lang import ir
from archspec.lang.diagnostics import did_you_mean, error
from archspec.lang.limits import MAX_INT_DIGITS, MAX_YAML_DEPTH, MAX_YAML_NODES
from archspec.lang.source import SourceFile, Span
from archspec.lang.syntax.to_ir import check_depth, parse
from archspec.lang.syntax.yaml_form import ALLOWED, NAME, RESERVED, STRUCTURES, TOP_KEYS

Node = yaml.Node

_CORE = "tag:yaml.org,2002:"
# The YAML types a spec uses: an explicit tag outside these (`!foo`, `!!binary`, `!!set`) and an
# implicit one (a timestamp) are errors.
_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}


class _Nodes:
    """Typed, located access to composed YAML nodes: mappings, sequences, names, scalars and
    the embedded .arch text, each failing with a diagnostic at the node."""

    def __init__(self, source: SourceFile) -> None:
        self.source = source
        self.parsed: dict[tuple[int, str], Any] = {}  # an alias's text is parsed once

    def span(self, node: Node) -> Span:
        m = node.start_mark
        end = node.end_mark.column + 1 if node.end_mark.line == m.line else None
        return Span(self.source, m.line + 1, m.column + 1, end)

    def fail(self, node: Node, message: str, hint: str | None = None) -> Exception:
        return error("E150", message, self.span(node), hint=hint)

    def text(self, node: Node, start: str) -> Any:
        """Parse a scalar's text from grammar rule ``start``, with positions in this file."""
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"expected a string ({start}) here")
        key = (id(node), start)
        if key not in self.parsed:
            quote = 1 if node.style in ("'", '"') else 0
            m = node.start_mark
            pad = "\n" * m.line + " " * (m.column + quote)
            self.parsed[key] = parse(self.source, pad + str(node.value), start=start)
        return self.parsed[key]

    def mapping(self, node: Node, what: str) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, tuple[Node, Node]] = {}
        for k, v in node.value:
            key = self.word(k, "a key")
            if key in out:
                raise error("E151", f"`{key}` given twice in {what}", self.span(k),
                            hint="each key once: YAML would keep only the last one",
                            notes=(("first given here", self.span(out[key][0])),))
            out[key] = (k, v)
        return out

    def word(self, node: Node, what: str) -> str:
        """A scalar's text (a name, a type, a key); a list or mapping here is an error."""
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be a plain value, not a list or mapping")
        return str(node.value)

    def ident(self, node: Node, what: str) -> str:
        """A name the text form could write (the grammar's NAME): a network, input, block or
        parameter name; anything else could change the spec when `convert` writes it."""
        text = self.word(node, what)
        if not NAME.fullmatch(text) or text in RESERVED:
            raise error("E153", f"{what} {text!r} is not a name", self.span(node),
                        hint="names are letters, digits and _, not starting with a digit, "
                             f"and not one of {', '.join(RESERVED)}")
        return text

    def seq(self, node: Node, what: str) -> list[Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def expr(self, node: Node) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag != _CORE + "str":
            return ir.Lit(value=self.scalar(node), span=self.span(node))
        if isinstance(node, yaml.SequenceNode):
            return ir.ListExpr(items=tuple(self.expr(n) for n in node.value),
                               span=self.span(node))
        return self.text(node, "expr")

    def scalar(self, node: yaml.ScalarNode) -> Any:
        """The value of a number, bool or null scalar; an empty one or another type is an
        error."""
        if node.tag not in _TAGS:
            raise error("E152", f"a YAML {node.tag.removeprefix(_CORE)} is not a spec value",
                        self.span(node), hint="quote it to make it a string")
        if not str(node.value).strip():
            raise self.fail(node, "empty value", hint="write a value, or leave the key out")
        if node.tag == _CORE + "int" and sum(c.isdigit() for c in node.value) > MAX_INT_DIGITS:
            raise error("E701", "integer too large", self.span(node),
                        hint=f"integers have at most {MAX_INT_DIGITS} digits")
        return yaml.safe_load(str(node.value))

    def check_keys(self, keys: dict[str, tuple[Node, Node]], allowed: set[str] | tuple[str, ...],
                   what: str) -> None:
        for key, (knode, _) in keys.items():
            if key not in allowed:
                raise self.fail(knode, f"unknown key `{key}` in {what}",
                                hint=did_you_mean(key, allowed) or
                                f"allowed: {', '.join(sorted(allowed))}")

    # ------------------------------------------------------------------ structure


class _Reader(_Nodes):
    """Turns composed YAML nodes into IR, parsing embedded text with the .arch grammar."""

    def params(self, node: Node | None) -> tuple[ir.Param, ...]:
        if node is None:
            return ()
        out = []
        for name, (knode, vnode) in self.mapping(node, "params").items():
            self.ident(knode, "the parameter")
            fields = self.mapping(vnode, f"parameter `{name}`") if isinstance(
                vnode, yaml.MappingNode) else {}
            self.check_keys(fields, ("type", "default"), f"parameter `{name}`")
            typ = self.word(fields["type"][1], "a type") if "type" in fields else "any"
            default = self.expr(fields["default"][1]) if "default" in fields else None
            where = fields["type"][1] if "type" in fields else knode
            out.append(ir.Param(name=name, type=typ, default=default, span=self.span(where)))
        return tuple(out)

    def body(self, node: Node) -> tuple[Any, ...]:
        return tuple(self.stmt(n) for n in self.seq(node, "a body"))

    def stmt(self, node: Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self.text(node, "stmt")
        keys = self.mapping(node, "a statement")
        kind = next((k for k in keys if k in STRUCTURES), None)
        if kind in ("for", "if"):
            return self.control(kind, keys)
        if kind is not None:
            return ir.Chain(elements=(self.structure(kind, keys),), span=self.span(node))
        if len(keys) != 1:
            raise self.fail(node, "a labelled statement has exactly one key",
                            hint="write `- name: layer(...)`, one per list item")
        (name, (knode, value)), = keys.items()
        label = self.text(knode, "label")
        return ir.Chain(label=label, elements=self.elements(value), span=self.span(node))

    def elements(self, value: Node) -> tuple[Any, ...]:
        if isinstance(value, yaml.ScalarNode):
            return self.text(value, "chain")
        if isinstance(value, yaml.SequenceNode):
            return (ir.Group(body=self.body(value), span=self.span(value)),)
        keys = self.mapping(value, "a layer")
        kind = next((k for k in keys if k in STRUCTURES and k not in ("for", "if")), None)
        if kind is None:
            raise self.fail(value, "expected a layer string, a list or a structure",
                            hint=f"structures: {', '.join(STRUCTURES)}")
        if kind == "chain":
            self.check_keys(keys, ALLOWED["chain"], "chain")
            return tuple(self.element(n) for n in self.seq(keys["chain"][1], "chain"))
        return (self.structure(kind, keys),)

    def element(self, node: Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            (el,) = self.text(node, "chain")
            return el
        keys = self.mapping(node, "a chain element")
        kind = next((k for k in keys if k in STRUCTURES), None)
        if kind is None or kind in ("for", "if", "chain"):
            raise self.fail(node, "expected a layer string or a structure")
        return self.structure(kind, keys)

    def structure(self, kind: str, keys: dict[str, tuple[Node, Node]]) -> Any:
        self.check_keys(keys, ALLOWED[kind], kind)
        knode, value = keys[kind]
        span = self.span(knode)
        if kind == "concat":
            args = tuple(ir.Arg(name=k, value=self.expr(v), span=self.span(kn))
                         for k, (kn, v) in keys.items() if k != "concat")
            return ir.Concat(args=args, body=self.body(value), span=span)
        if kind == "dense":
            return ir.Dense(body=self.body(value), span=span)
        if kind == "group":
            return ir.Group(body=self.body(value), span=span)
        if kind == "residual":
            sc = keys.get("shortcut")
            cond = keys.get("shortcut_if")
            return ir.Residual(body=self.body(value),
                               shortcut=self.body(sc[1]) if sc else None,
                               shortcut_if=self.expr(cond[1]) if cond else None, span=span)
        body_node = keys["body"][1] if "body" in keys else None
        if body_node is None:
            raise self.fail(knode, "`repeat` needs a `body`")
        var = self.word(keys["as"][1], "`as`") if "as" in keys else None
        if isinstance(body_node, yaml.ScalarNode):
            body = (ir.Chain(elements=self.text(body_node, "chain"), span=self.span(body_node)),)
        else:
            body = self.body(body_node)
        return ir.Repeat(count=self.expr(value), var=var, body=body, span=span)

    def control(self, kind: str, keys: dict[str, tuple[Node, Node]]) -> Any:
        self.check_keys(keys, ALLOWED[kind], kind)
        knode, value = keys[kind]
        if kind == "for":
            names = tuple(v.strip() for v in self.word(value, "`for`").split(","))
            if "in" not in keys or "body" not in keys:
                raise self.fail(knode, "`for` needs `in` and `body`")
            return ir.For(vars=names, iterable=self.expr(keys["in"][1]),
                          body=self.body(keys["body"][1]), span=self.span(knode))
        if "then" not in keys:
            raise self.fail(knode, "`if` needs `then`")
        other = keys.get("else")
        return ir.If(cond=self.expr(value), then=self.body(keys["then"][1]),
                     other=self.body(other[1]) if other else None, span=self.span(knode))

    def inputs(self, node: Node) -> tuple[ir.InputDecl, ...]:
        out = []
        for name, (knode, vnode) in self.mapping(node, "inputs").items():
            self.ident(knode, "the input")
            if isinstance(vnode, yaml.SequenceNode):
                dims = tuple(self.expr(n) for n in vnode.value)
            else:
                dims = self.shape(name, vnode)
            out.append(ir.InputDecl(name=name, shape=dims, span=self.span(knode)))
        return tuple(out)

    def shape(self, name: str, node: Node) -> tuple[ir.Lit, ...]:
        """``3x224x224`` (or a single int): every dim a number, else a located error."""
        parts = str(node.value).split("x") if isinstance(node, yaml.ScalarNode) else [""]
        if not all(p.isdecimal() and p.isascii() for p in parts):
            raise error("E130", f"input `{name}` has a bad shape `{node.value}`"
                        if isinstance(node, yaml.ScalarNode) else f"input `{name}` has no shape",
                        self.span(node), hint="write dims separated by `x`, e.g. 3x224x224, "
                                              "or a list [3, size, size]")
        if any(len(p) > MAX_INT_DIGITS for p in parts):
            raise error("E701", "integer too large", self.span(node),
                        hint=f"integers have at most {MAX_INT_DIGITS} digits")
        return tuple(ir.Lit(value=int(p), span=self.span(node)) for p in parts)

    def inits(self, node: Node | None) -> tuple[ir.InitRule, ...]:
        out = []
        for op, (knode, vnode) in (self.mapping(node, "init").items() if node else ()):
            cond = None
            if isinstance(vnode, yaml.MappingNode):  # {scheme: "normal(...)", if: "aux"}
                fields = self.mapping(vnode, f"init `{op}`")
                self.check_keys(fields, ("scheme", "if"), f"init `{op}`")
                cond = self.expr(fields["if"][1]) if "if" in fields else None
                if "scheme" not in fields:
                    raise self.fail(vnode, f"init `{op}` has no `scheme`",
                                    hint='e.g. `{scheme: "normal(0, 0.01)", if: aux}`')
                vnode = fields["scheme"][1]
            chain = self.text(vnode, "chain")
            if len(chain) != 1:
                raise self.fail(vnode, f"init `{op}` names {len(chain)} schemes in a chain; "
                                "an init rule takes one",
                                hint='e.g. `conv2d: "kaiming_normal(mode=\'fan_out\')"`')
            (scheme,) = chain
            out.append(ir.InitRule(op=op, scheme=scheme, cond=cond, span=self.span(knode)))
        return tuple(out)

    def blocks(self, node: Node | None) -> tuple[ir.BlockDef, ...]:
        out = []
        for name, (knode, vnode) in (self.mapping(node, "blocks").items() if node else ()):
            self.ident(knode, "the block")
            fields = self.mapping(vnode, f"block `{name}`")
            self.check_keys(fields, ("params", "inputs", "init", "body"), f"block `{name}`")
            if "body" not in fields:
                raise self.fail(knode, f"block `{name}` has no `body`",
                                hint="add `body: [...]`, the block's layers")
            params = self.params(fields["params"][1] if "params" in fields else None)
            inputs = tuple(self.ident(n, "the block input") for n in
                           self.seq(fields["inputs"][1], "`inputs`")) if "inputs" in fields else ()
            out.append(ir.BlockDef(name=name, params=params, inputs=inputs,
                                   body=self.body(fields["body"][1]),
                                   inits=self.inits(fields["init"][1] if "init" in fields
                                                    else None),
                                   span=self.span(knode)))
        return tuple(out)

    def names(self, node: Node | None, what: str) -> tuple[str, ...]:
        return tuple(self.word(n, what) for n in self.seq(node, what)) if node else ()

    def spec(self, root: Node) -> ir.Spec:
        keys = self.mapping(root, "a YAML spec")
        self.check_keys(keys, TOP_KEYS, "the spec")
        get = {k: v for k, (_, v) in keys.items()}
        if "inputs" not in get:
            raise self.fail(root, "the network has no `inputs`",
                            hint="add e.g. `inputs: {x: 3x224x224}`")
        stem = self.source.name.rsplit("/", 1)[-1].split(".")[0]
        return ir.Spec(
            name=self.ident(get["network"], "`network`") if "network" in get else stem,
            params=self.params(get.get("params")), imports=self.names(get.get("imports"),
                                                                       "imports"),
            inputs=self.inputs(get["inputs"]), outputs=tuple(self.text(n, "output_item")
                          for n in self.seq(get.get("outputs"), "outputs"))
            if get.get("outputs") else (),
            inits=self.inits(get.get("init")), blocks=self.blocks(get.get("blocks")),
            body=self.body(get["body"]) if "body" in get else (), span=self.span(root))


class _Size:
    """Nodes and height of a YAML collection (or anchored node) with aliases expanded."""

    def __init__(self, nodes: int = 1, height: int = 1, anchor: str | None = None) -> None:
        self.nodes, self.height, self.anchor = nodes, height, anchor

    def add(self, other: _Size) -> None:
        self.nodes += other.nodes
        self.height = max(self.height, other.height + 1)


def _too_large(source: SourceFile, mark: Any, what: str) -> Exception:
    return error("E706", f"the YAML document is {what}", Span(source, mark.line + 1,
                                                               mark.column + 1),
                 hint=f"at most {MAX_YAML_DEPTH} levels and {MAX_YAML_NODES:,} nodes, aliases "
                      "expanded")


def _check_tag(source: SourceFile, ev: Any) -> None:
    if ev.tag and ev.tag not in _TAGS and ev.tag != "!":
        raise error("E152", f"YAML tag `{ev.tag}` is not allowed in a spec",
                    Span(source, ev.start_mark.line + 1, ev.start_mark.column + 1),
                    hint="specs use plain YAML: mappings, lists, strings and numbers")


def _prescan(source: SourceFile) -> None:
    """Refuse explicit tags, deep nesting and alias bombs from the event stream (PyYAML's
    parser is not recursive), before the recursive composer sees the document."""
    stack: list[_Size] = [_Size(0, 0)]
    anchors: dict[str, _Size] = {}
    total = 0
    for ev in yaml.parse(source.text, Loader=yaml.SafeLoader):
        if isinstance(ev, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            _check_tag(source, ev)
        if isinstance(ev, yaml.CollectionStartEvent):
            stack.append(_Size(anchor=ev.anchor))
            done, total = None, total + 1
        elif isinstance(ev, yaml.CollectionEndEvent):
            done = stack.pop()
            anchor = done.anchor
        elif isinstance(ev, yaml.AliasEvent):
            done = anchors.get(ev.anchor, _Size())
            total, anchor = total + done.nodes, None
        elif isinstance(ev, yaml.ScalarEvent):
            done, total, anchor = _Size(), total + 1, ev.anchor
        else:
            continue
        if total > MAX_YAML_NODES:
            raise _too_large(source, ev.start_mark, f"over {MAX_YAML_NODES:,} nodes")
        if done is not None:
            stack[-1].add(done)
            if anchor:
                anchors[anchor] = done
        if len(stack) - 1 + (done.height if done else 0) > MAX_YAML_DEPTH:
            raise _too_large(source, ev.start_mark, f"nested over {MAX_YAML_DEPTH} deep")


def yaml_to_spec(source: SourceFile) -> ir.Spec:
    """Parse a YAML spec (safe composer only) into the IR."""
    try:
        _prescan(source)
        root = yaml.compose(source.text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise error("E104", f"invalid YAML: {exc.problem}", Span(source, line, col),
                    hint=exc.context or "check indentation and quoting") from None
    except yaml.reader.ReaderError as exc:
        text, at = source.text, exc.position
        line, col = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
        raise error("E104", f"invalid YAML: character {exc.character!r} is not allowed",
                    Span(source, line, col, col + 1),
                    hint="YAML allows no control characters; remove it") from None
    if root is None:
        raise error("E004", f"{source.name} is empty", Span(source, 1, 1))
    return check_depth(_Reader(source).spec(root))


# ---------------------------------------------------------------------- IR -> YAML


"""Parse text straight to IR: a lark Transformer run inside the LALR parser.

There is one method per grammar rule and it only builds nodes, never validates (lark would wrap
what it raises): the grammar gives every field its type, so nodes are made with
:meth:`~archspec.lang.ir.Node.made`, which builds no pydantic validator. The transformer runs as
rules are reduced, so no parse tree is built; spans come from the tokens (keywords are named
terminals for that reason).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedInput

from archspec.lang import ir
from archspec.lang.diagnostics import error
from archspec.lang.limits import MAX_INT_DIGITS, MAX_SYNTAX_DEPTH
from archspec.lang.source import SourceFile, Span
from archspec.lang.syntax.parser import build_lark, parse_reporting_all, syntax_error

_HOLE = re.compile(r"\{([^{}]*)\}")



class Body(tuple):
    """The statements of a ``{ ... }`` body, remembering where the brace was."""

    span: Span


class ToIR(Transformer):
    """Builds IR nodes from grammar rules. ``source`` is set by :func:`parse` for each file."""

    def __init__(self) -> None:
        super().__init__()
        self.source = SourceFile("<none>", "")

    # ---- spans
    def tok(self, t: Token) -> Span:
        return Span(self.source, t.line or 1, t.column or 1, (t.column or 1) + len(t))

    def span(self, *items: Any) -> Span:
        """From the first positioned item to the end of the last one on the same line."""
        spans = [s for s in map(self._span_of, items) if s is not None]
        if not spans:
            return Span(self.source, 1, 1)
        first, last = spans[0], spans[-1]
        end = last.end_col if last.line == first.line else None
        return Span(self.source, first.line, first.col, end)

    def _span_of(self, item: Any) -> Span | None:
        if isinstance(item, Token):
            return self.tok(item)
        if isinstance(item, ir.Node):
            return item.span
        if isinstance(item, Body):
            return item.span
        if isinstance(item, (tuple, list)) and item:
            return self._span_of(item[0])
        return None

    # ---- top level
    def start(self, c: list[Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"import": [], "network": [], "input": [], "output": [],
                                     "init": [], "block": [], "stmt": []}
        for item in c:
            if isinstance(item, tuple) and not isinstance(item, Body):
                out[item[0]].append(item[1])
            elif item is not None:
                out["stmt"].append(item)
        return out

    def import_stmt(self, c: list[Token]) -> tuple[str, tuple[str, Span]]:
        return "import", (c[1][1:-1], self.tok(c[1]))

    def network_decl(self, c: list[Any]) -> tuple[str, tuple[str, tuple, Span]]:
        return "network", (str(c[1]), tuple(c[2] or ()), self.tok(c[1]))

    def input_decl(self, c: list[Any]) -> tuple[str, ir.InputDecl]:
        _kw, name, shape = c
        if isinstance(shape, Token):
            dims = tuple(ir.Lit.made(value=self.int_value(d, shape), span=self.tok(shape))
                         for d in str(shape).split("x"))
        else:
            dims = shape.items
        return "input", ir.InputDecl.made(name=str(name), shape=dims, span=self.tok(name))

    def output_decl(self, c: list[Any]) -> tuple[str, list[ir.OutputDecl]]:
        return "output", list(c[1:])

    def output_item(self, c: list[Any]) -> ir.OutputDecl:
        qualifier, name, _if, cond = c
        if qualifier is not None and qualifier != "train":
            raise error("E103", f"unexpected `{qualifier}` before the output `{name}`",
                        self.tok(qualifier), hint="an output is a name, or `train NAME` for one "
                        "returned in training mode only (`output logits, train aux`)")
        return ir.OutputDecl.made(name=str(name), cond=cond, train=qualifier is not None,
                                  span=self.tok(name))

    def init_decl(self, c: list[Any]) -> tuple[str, ir.InitRule]:
        _kw, target, _if, cond, scheme = c
        text = str(target)[1:-1] if target.type == "STRING" else str(target)
        return "init", ir.InitRule.made(op=text, cond=cond, scheme=scheme,
                                        span=self.tok(target))

    def block_def(self, c: list[Any]) -> tuple[str, ir.BlockDef]:
        _kw, name, params, inputs, (body, inits) = c
        return "block", ir.BlockDef.made(name=str(name), params=params, inputs=inputs or (),
                                         body=tuple(body), inits=inits, span=self.tok(name))

    def block_inputs(self, c: list[Token]) -> tuple[str, ...]:
        return tuple(map(str, c))

    def block_body(self, c: list[Any]) -> tuple[Body, tuple[ir.InitRule, ...]]:
        """A block's statements, and the ``init`` rules among them."""
        inits = tuple(item[1] for item in c[1:] if isinstance(item, tuple)
                      and not isinstance(item, Body) and item[0] == "init")
        out = Body(s for s in c[1:] if s is not None and not (
            isinstance(s, tuple) and not isinstance(s, Body) and s[0] == "init"))
        out.span = self.tok(c[0])
        return out, inits

    def param_list(self, c: list[Any]) -> tuple[ir.Param, ...]:
        return tuple(p for p in c if p is not None)

    def param(self, c: list[Any]) -> ir.Param:
        name, typ, default = c
        return ir.Param.made(name=str(name), type=str(typ or "any"), default=default,
                             span=self.tok(typ) if typ is not None else self.tok(name))

    def body(self, c: list[Any]) -> Body:
        out = Body(s for s in c[1:] if s is not None)
        out.span = self.tok(c[0])
        return out

    # ---- statements
    def labelled(self, c: list[Any]) -> ir.Chain:
        label, chain = c
        return ir.Chain.made(label=label, elements=chain, span=self.span(label, chain[-1]))

    def assign(self, c: list[Any]) -> ir.Chain:
        *names, chain = c
        label = ir.Label.made(parts=(str(names[0]),), span=self.tok(names[0]))
        return ir.Chain.made(label=label, assign=True, more=tuple(map(str, names[1:])),
                             elements=chain, span=self.span(names[0], chain[-1]))

    def chain_stmt(self, c: list[Any]) -> ir.Chain:
        return ir.Chain.made(elements=c[0], span=self.span(c[0][0], c[0][-1]))

    def for_stmt(self, c: list[Any]) -> ir.For:
        kw, *names, _in, iterable, body = c
        return ir.For.made(vars=tuple(map(str, names)), iterable=iterable, body=tuple(body),
                           span=self.tok(kw))

    def if_stmt(self, c: list[Any]) -> ir.If:
        kw, cond, then, other = c
        other = (other,) if isinstance(other, ir.If) else other
        return ir.If.made(cond=cond, then=tuple(then),
                          other=None if other is None else tuple(other), span=self.tok(kw))

    def label(self, c: list[Any]) -> ir.Label:
        """Segments joined by dots; text runs merged, so ``convs.{i}`` is ``("convs.", i)``."""
        parts: list[Any] = []
        for i, seg in enumerate(c):
            if i:
                parts.append(".")
            if isinstance(seg, Token):
                parts += self._holes(seg) if seg.type == "TEMPLATE_NAME" else [str(seg)]
            else:
                parts.append(seg)
        merged: list[Any] = []
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            else:
                merged.append(part)
        return ir.Label.made(parts=tuple(merged), span=self.span(c[0], c[-1]))

    def label_hole(self, c: list[Any]) -> Any:
        return c[1]

    def _holes(self, tok: Token) -> tuple[Any, ...]:
        parts: list[Any] = []
        pos = 0
        for m in _HOLE.finditer(str(tok)):
            parts.append(str(tok)[pos:m.start()])
            pad = "\n" * ((tok.line or 1) - 1) + " " * ((tok.column or 1) + m.start(1) - 1)
            parts.append(parse(self.source, pad + m.group(1), start="expr"))
            pos = m.end()
        parts.append(str(tok)[pos:])
        return tuple(p for p in parts if p != "")

    def chain(self, c: list[Any]) -> tuple[Any, ...]:
        return tuple(c)

    # ---- chain elements
    def call(self, c: list[Any]) -> ir.LayerCall:
        name, args, inputs = c
        in_names = None
        spans: tuple[Span, ...] = ()
        if inputs is not None:
            in_names = tuple(_ref_name(a) for a in inputs)
            spans = tuple(a.span if isinstance(a, ir.Node) else self.tok(name) for a in inputs)
        return ir.LayerCall.made(callee=str(name), args=tuple(_arg(a) for a in args or ()),
                                 inputs=in_names, input_spans=spans, span=self.tok(name))

    def concat_call(self, c: list[Any]) -> ir.LayerCall:
        return self.call(c)

    def arg_list(self, c: list[Any]) -> list[Any]:
        return [a for a in c if a is not None]

    def kwarg(self, c: list[Any]) -> ir.Arg:
        name, value = c
        return ir.Arg.made(name=str(name), value=value, span=self.tok(name))

    def repeat(self, c: list[Any]) -> ir.Repeat:
        kw, count, var, body = c
        stmts = tuple(body) if isinstance(body, tuple) else (
            ir.Chain.made(elements=(body,), span=body.span),)
        return ir.Repeat.made(count=count, var=None if var is None else str(var), body=stmts,
                              span=self.tok(kw))

    def concat(self, c: list[Any]) -> ir.Concat:
        kw, args, body = c
        return ir.Concat.made(args=tuple(_arg(a) for a in args or ()), body=tuple(body),
                              span=self.tok(kw))

    def residual(self, c: list[Any]) -> ir.Residual:
        kw, body, short = c
        cond, sbody = short if short is not None else (None, None)
        return ir.Residual.made(body=tuple(body),
                                shortcut=None if sbody is None else tuple(sbody),
                                shortcut_if=cond, span=self.tok(kw))

    def shortcut(self, c: list[Any]) -> tuple[Any, Any]:
        _kw, _if, cond, body = c
        return cond, body

    def dense(self, c: list[Any]) -> ir.Dense:
        return ir.Dense.made(body=tuple(c[1]), span=self.tok(c[0]))

    def group(self, c: list[Any]) -> ir.Group:
        return ir.Group.made(body=tuple(c[0]), span=c[0].span)

    # ---- expressions
    def int_value(self, digits: str, tok: Token) -> int:
        """``int(digits)``, refused before converting when it has too many digits."""
        if len(digits) > MAX_INT_DIGITS:
            raise error("E701", f"integer literal of {len(digits):,} digits is too large",
                        self.tok(tok), hint=f"integers have at most {MAX_INT_DIGITS} digits")
        return int(digits)

    def int_lit(self, c: list[Token]) -> ir.Lit:
        return ir.Lit.made(value=self.int_value(str(c[0]), c[0]), span=self.tok(c[0]))

    def float_lit(self, c: list[Token]) -> ir.Lit:
        return ir.Lit.made(value=float(c[0]), span=self.tok(c[0]))

    def str_lit(self, c: list[Token]) -> ir.Lit:
        return ir.Lit.made(value=str(c[0])[1:-1], span=self.tok(c[0]))

    def true_lit(self, c: list[Token]) -> ir.Lit:
        return ir.Lit.made(value=True, span=self.tok(c[0]))

    def false_lit(self, c: list[Token]) -> ir.Lit:
        return ir.Lit.made(value=False, span=self.tok(c[0]))

    def none_lit(self, c: list[Token]) -> ir.Lit:
        return ir.Lit.made(value=None, span=self.tok(c[0]))

    def var(self, c: list[Token]) -> ir.Var:
        return ir.Var.made(name=str(c[0]), span=self.tok(c[0]))

    def in_ref(self, c: list[Token]) -> ir.InRef:
        return ir.InRef.made(span=self.tok(c[0]))

    def list(self, c: list[Any]) -> ir.ListExpr:
        return ir.ListExpr.made(items=tuple(x for x in c[1:] if x is not None),
                                span=self.tok(c[0]))

    def tuple(self, c: list[Any]) -> ir.ListExpr:
        items = tuple(x for x in c if x is not None)
        return ir.ListExpr.made(items=items, tuple_=True, span=self.span(items[0], items[-1]))

    def getattr(self, c: list[Any]) -> ir.GetAttr:
        obj, tok = c
        for name in str(tok).split("."):  # `a.4.0` lexes `4.0` as one number
            obj = ir.GetAttr.made(obj=obj, name=name, span=self.span(c[0], tok))
        return obj

    def getitem(self, c: list[Any]) -> ir.GetItem:
        obj, index = c[0], c[-1]
        return ir.GetItem.made(obj=obj, index=index, span=self.span(obj, index))

    def fcall(self, c: list[Any]) -> ir.FuncCall:
        return ir.FuncCall.made(func=str(c[0]), args=tuple(x for x in c[1:] if x is not None),
                                span=self.tok(c[0]))

    def binop(self, c: list[Any]) -> ir.BinOp:
        return ir.BinOp.made(op=str(c[1]), left=c[0], right=c[2], span=self.span(c[0], c[2]))

    def test(self, c: list[Any]) -> Any:
        node, _ = self._climb(c, 0, 0)
        return node

    def _climb(self, items: list[Any], pos: int, min_prec: int) -> tuple[Any, int]:
        """Precedence climbing over ``[NOT*] operand (op [NOT*] operand)*``; a run of `not`
        is wrapped in a loop, so its length costs no Python stack."""
        first = pos
        while isinstance(items[pos], Token) and items[pos].type == "NOT":
            pos += 1
        if pos > first:
            lhs, end = self._climb(items, pos, ir.PRECEDENCE["not"])
            for at in reversed(range(first, pos)):
                lhs = ir.Not.made(operand=lhs, span=self.span(items[at], lhs))
        else:
            lhs, end = items[pos], pos + 1
        while end < len(items):
            op = str(items[end])
            prec = ir.PRECEDENCE[op]
            if prec < min_prec:
                break
            rhs, after = self._climb(items, end + 1, prec + 1)
            lhs = ir.BinOp.made(op=op, left=lhs, right=rhs, span=self.span(lhs, rhs))
            end = after
        return lhs, end

    def neg(self, c: list[Any]) -> ir.Neg:
        return ir.Neg.made(operand=c[1], span=self.span(c[0], c[1]))

    def cond(self, c: list[Any]) -> ir.Cond:
        then, _if, test, other = c
        return ir.Cond.made(then=then, cond=test, other=other, span=self.span(then, other))


def _arg(a: Any) -> ir.Arg:
    return a if isinstance(a, ir.Arg) else ir.Arg.made(value=a, span=a.span)


def _ref_name(a: Any) -> str:
    """A DAG input must be a name, a dotted layer path (``backbone.4``) or ``each(name)``;
    anything else keeps a marker the expander reports."""
    name = ir.ref_name(a)
    return "<not a name>" if name is None else name


def _children(obj: Any) -> Any:
    if isinstance(obj, ir.Node):  # a node's fields are its __dict__, in order
        return (v for k, v in obj.__dict__.items() if k != "span")
    if isinstance(obj, dict):
        return obj.values()
    return obj if isinstance(obj, (tuple, list)) else ()


def check_depth(tree: Any) -> Any:
    """``tree`` (IR, or tuples, lists and dicts of it) when it nests at most
    :data:`MAX_SYNTAX_DEPTH` nodes deep, else a located E705 at the first node too deep. Walked
    with an explicit stack: the printer, the YAML writer and the expander recurse on the IR."""
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        obj, depth = stack.pop()
        if isinstance(obj, ir.Node):
            depth += 1
            if depth > MAX_SYNTAX_DEPTH:
                raise error("E705", f"the spec nests more than {MAX_SYNTAX_DEPTH} levels deep",
                            obj.span, hint="split deep expressions or structures with "
                                           "variables, parameters or blocks")
        stack.extend((child, depth) for child in _children(obj))
    return tree


@lru_cache(maxsize=1)
def _lark() -> tuple[Lark, ToIR]:
    transformer = ToIR()
    return build_lark(transformer), transformer


def parse(source: SourceFile, text: str | None = None, start: str = "start") -> Any:
    """Parse ``text`` (default: all of ``source``) from grammar rule ``start`` straight to IR.

    ``start="start"`` gives the top-level parts (imports, network, inputs, blocks, body);
    ``expr``, ``chain``, ``stmt`` and ``label`` give one node. ``text`` lets a caller parse a
    fragment padded to its real line and column (label holes, YAML scalars, --set values).
    A whole file reports the errors of its later statements too (up to MAX_ERRORS).
    """
    if text is not None or start != "start":
        return _parse(source, text, start)
    return parse_reporting_all(source, lambda rest: _parse(source, rest, start))


def _parse(source: SourceFile, text: str | None, start: str) -> Any:
    lark, transformer = _lark()
    outer = transformer.source
    transformer.source = source
    try:
        return check_depth(lark.parse(source.text if text is None else text, start=start))
    except UnexpectedInput as exc:
        raise syntax_error(exc, source, lark) from None
    finally:
        transformer.source = outer

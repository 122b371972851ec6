"""Lark tree -> IR. One method per grammar rule; it only builds nodes, never validates."""

from __future__ import annotations

import re
from typing import Any

from lark import Token, Transformer, Tree, v_args

from archspec import ir
from archspec.source import SourceFile, Span
from archspec.syntax.parser import parse_tree

_HOLE = re.compile(r"\{([^{}]*)\}")


def _span(source: SourceFile, meta: Any) -> Span:
    if getattr(meta, "empty", True):
        return Span(source, 1, 1)
    end = meta.end_column if meta.end_line == meta.line else None
    return Span(source, meta.line, meta.column, end)


def _kw_span(source: SourceFile, meta: Any, keyword: str) -> Span:
    """The span of a construct's leading keyword (``concat``, ``residual``...)."""
    return Span(source, meta.line, meta.column, meta.column + len(keyword))


def _tok_span(source: SourceFile, tok: Token) -> Span:
    return Span(source, tok.line or 1, tok.column or 1, (tok.column or 1) + len(tok))


@v_args(meta=True)
class ToIR(Transformer):
    """Builds IR nodes from the parse tree of one source file."""

    def __init__(self, source: SourceFile) -> None:
        super().__init__()
        self.source = source

    def _s(self, meta: Any) -> Span:
        return _span(self.source, meta)

    # ---- top level
    def start(self, meta: Any, items: list[Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"import": [], "network": [], "input": [], "output": [],
                                     "block": [], "stmt": []}
        for item in items:
            if isinstance(item, tuple):
                out[item[0]].append(item[1])
            elif item is not None:
                out["stmt"].append(item)
        return out

    def import_stmt(self, meta: Any, c: list[Any]) -> tuple[str, tuple[str, Span]]:
        return "import", (c[0][1:-1], self._s(meta))

    def network_decl(self, meta: Any, c: list[Any]) -> tuple[str, tuple[str, tuple, Span]]:
        return "network", (str(c[0]), tuple(c[1] or ()), self._s(meta))

    def input_decl(self, meta: Any, c: list[Any]) -> tuple[str, ir.InputDecl]:
        name, shape = c
        if isinstance(shape, Token):
            span = _tok_span(self.source, shape)
            dims = tuple(ir.Lit(value=int(d), span=span) for d in str(shape).split("x"))
        else:
            dims = shape.items
        return "input", ir.InputDecl(name=str(name), shape=dims, span=self._s(meta))

    def output_decl(self, meta: Any, c: list[Any]) -> tuple[str, list[tuple[str, Span]]]:
        return "output", [(str(t), _tok_span(self.source, t)) for t in c]

    def block_def(self, meta: Any, c: list[Any]) -> tuple[str, ir.BlockDef]:
        name, params, body = c
        return "block", ir.BlockDef(name=str(name), params=params, body=body,
                                    span=_tok_span(self.source, name))

    def param_list(self, meta: Any, c: list[Any]) -> tuple[ir.Param, ...]:
        return tuple(p for p in c if p is not None)

    def param(self, meta: Any, c: list[Any]) -> ir.Param:
        name, typ, default = c
        return ir.Param.model_validate({"name": str(name), "type": str(typ or "any"),
                                        "default": default, "span": self._s(meta)})

    def body(self, meta: Any, c: list[Any]) -> tuple[Any, ...]:
        return tuple(s for s in c if s is not None)

    # ---- statements
    def labelled(self, meta: Any, c: list[Any]) -> ir.Chain:
        label, chain = c
        return ir.Chain(label=label, elements=chain, span=self._s(meta))

    def assign(self, meta: Any, c: list[Any]) -> ir.Chain:
        name, chain = c
        label = ir.Label(parts=(str(name),), span=_tok_span(self.source, name))
        return ir.Chain(label=label, assign=True, elements=chain, span=self._s(meta))

    def chain_stmt(self, meta: Any, c: list[Any]) -> ir.Chain:
        return ir.Chain(elements=c[0], span=self._s(meta))

    def for_stmt(self, meta: Any, c: list[Any]) -> ir.For:
        *names, iterable, body = c
        return ir.For(vars=tuple(map(str, names)), iterable=iterable,
                              body=body, span=self._s(meta))

    def if_stmt(self, meta: Any, c: list[Any]) -> ir.If:
        cond, then, other = c
        if isinstance(other, ir.If):
            other = (other,)
        return ir.If(cond=cond, then=then,
                             other=None if other is None else other, span=self._s(meta))

    def label(self, meta: Any, c: list[Token]) -> ir.Label:
        tok = c[0]
        span = _tok_span(self.source, tok)
        if tok.type == "NAME":
            return ir.Label(parts=(str(tok),), span=span)
        return ir.Label(parts=self._holes(tok), span=span)

    def _holes(self, tok: Token) -> tuple[Any, ...]:
        parts: list[Any] = []
        pos = 0
        for m in _HOLE.finditer(str(tok)):
            parts.append(str(tok)[pos:m.start()])
            pad = "\n" * ((tok.line or 1) - 1) + " " * ((tok.column or 1) + m.start(1) - 1)
            tree = parse_tree(self.source, pad + m.group(1), start="expr")
            parts.append(ToIR(self.source).transform(tree))
            pos = m.end()
        parts.append(str(tok)[pos:])
        return tuple(p for p in parts if p != "")

    def chain(self, meta: Any, c: list[Any]) -> tuple[Any, ...]:
        return tuple(c)

    # ---- chain elements
    def call(self, meta: Any, c: list[Any]) -> ir.LayerCall:
        name, args, inputs = c
        in_names = None
        spans: tuple[Span, ...] = ()
        if inputs is not None:
            in_names = tuple(_ref_name(a) for a in inputs)
            spans = tuple(a.span if isinstance(a, ir.Node) else self._s(meta) for a in inputs)
        return ir.LayerCall(callee=str(name), args=tuple(_arg(a) for a in args or ()),
                            inputs=in_names, input_spans=spans, span=_tok_span(self.source, name))

    def concat_call(self, meta: Any, c: list[Any]) -> ir.LayerCall:
        name = Token("NAME", "concat", line=meta.line, column=meta.column)
        return self.call(meta, [name, *c])

    def arg_list(self, meta: Any, c: list[Any]) -> list[Any]:
        return [a for a in c if a is not None]

    def kwarg(self, meta: Any, c: list[Any]) -> ir.Arg:
        name, value = c
        return ir.Arg(name=str(name), value=value, span=_tok_span(self.source, name))

    def repeat(self, meta: Any, c: list[Any]) -> ir.Repeat:
        count, var, body = c
        stmts = body if isinstance(body, tuple) else (ir.Chain(elements=(body,), span=body.span),)
        return ir.Repeat(count=count, var=None if var is None else str(var),
                         body=stmts, span=_kw_span(self.source, meta, "repeat"))

    def concat(self, meta: Any, c: list[Any]) -> ir.Concat:
        args, body = c
        return ir.Concat(args=tuple(_arg(a) for a in args or ()), body=body,
                         span=_kw_span(self.source, meta, "concat"))

    def residual(self, meta: Any, c: list[Any]) -> ir.Residual:
        body, short = c
        cond, sbody = short if short is not None else (None, None)
        return ir.Residual(body=body, shortcut=None if sbody is None else sbody,
                           shortcut_if=cond, span=_kw_span(self.source, meta, "residual"))

    def shortcut(self, meta: Any, c: list[Any]) -> tuple[Any, Any]:
        return c[0], c[1]

    def dense(self, meta: Any, c: list[Any]) -> ir.Dense:
        return ir.Dense(body=c[0], span=_kw_span(self.source, meta, "dense"))

    def group(self, meta: Any, c: list[Any]) -> ir.Group:
        return ir.Group(body=c[0], span=self._s(meta))

    # ---- expressions
    def int_lit(self, meta: Any, c: list[Token]) -> ir.Lit:
        return ir.Lit(value=int(c[0]), span=self._s(meta))

    def float_lit(self, meta: Any, c: list[Token]) -> ir.Lit:
        return ir.Lit(value=float(c[0]), span=self._s(meta))

    def str_lit(self, meta: Any, c: list[Token]) -> ir.Lit:
        return ir.Lit(value=str(c[0])[1:-1], span=self._s(meta))

    def true_lit(self, meta: Any, c: list[Any]) -> ir.Lit:
        return ir.Lit(value=True, span=self._s(meta))

    def false_lit(self, meta: Any, c: list[Any]) -> ir.Lit:
        return ir.Lit(value=False, span=self._s(meta))

    def none_lit(self, meta: Any, c: list[Any]) -> ir.Lit:
        return ir.Lit(value=None, span=self._s(meta))

    def var(self, meta: Any, c: list[Token]) -> ir.Var:
        return ir.Var(name=str(c[0]), span=self._s(meta))

    def in_ref(self, meta: Any, c: list[Any]) -> ir.InRef:
        return ir.InRef(span=self._s(meta))

    def list(self, meta: Any, c: list[Any]) -> ir.ListExpr:
        return ir.ListExpr(items=tuple(x for x in c if x is not None), span=self._s(meta))

    def tuple(self, meta: Any, c: list[Any]) -> ir.ListExpr:
        return ir.ListExpr(items=tuple(x for x in c if x is not None), tuple_=True,
                           span=self._s(meta))

    def getattr(self, meta: Any, c: list[Any]) -> ir.GetAttr:
        return ir.GetAttr(obj=c[0], name=str(c[1]), span=self._s(meta))

    def getitem(self, meta: Any, c: list[Any]) -> ir.GetItem:
        return ir.GetItem(obj=c[0], index=c[1], span=self._s(meta))

    def fcall(self, meta: Any, c: list[Any]) -> ir.FuncCall:
        return ir.FuncCall(func=str(c[0]), args=tuple(x for x in c[1:] if x is not None),
                           span=self._s(meta))

    def binop(self, meta: Any, c: list[Any]) -> ir.BinOp:
        return ir.BinOp(op=str(c[1]), left=c[0], right=c[2], span=self._s(meta))

    def or_(self, meta: Any, c: list[Any]) -> ir.BinOp:
        return ir.BinOp(op="or", left=c[0], right=c[1], span=self._s(meta))

    def and_(self, meta: Any, c: list[Any]) -> ir.BinOp:
        return ir.BinOp(op="and", left=c[0], right=c[1], span=self._s(meta))

    def not_(self, meta: Any, c: list[Any]) -> ir.Not:
        return ir.Not(operand=c[0], span=self._s(meta))

    def neg(self, meta: Any, c: list[Any]) -> ir.Neg:
        return ir.Neg(operand=c[-1], span=self._s(meta))

    def cond(self, meta: Any, c: list[Any]) -> ir.Cond:
        return ir.Cond(then=c[0], cond=c[1], other=c[2], span=self._s(meta))


def _arg(a: Any) -> ir.Arg:
    return a if isinstance(a, ir.Arg) else ir.Arg(value=a, span=a.span)


def _ref_name(a: Any) -> str:
    """A DAG input must be a bare name; anything else keeps a marker the expander reports."""
    if isinstance(a, ir.Var):
        return a.name
    if isinstance(a, ir.InRef):
        return "in"
    return "<not a name>"


def tree_to_parts(source: SourceFile, tree: Tree) -> dict[str, list[Any]]:
    """Transform a parsed file into its top-level parts (imports, network, blocks, body...)."""
    return ToIR(source).transform(tree)

"""IR -> text (.arch) printer, and the flat listing of an expanded graph."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archspec.lang import ir
from archspec.lang.values import show


def _binop(e: ir.BinOp, parent: float) -> str:
    p = ir.PRECEDENCE[e.op]
    right = p + 1 if e.op != "**" else p
    return _paren(f"{expr(e.left, p if e.op != '**' else p + 1)} {e.op} {expr(e.right, right)}",
                  p, parent)


def _list(e: ir.ListExpr, parent: float) -> str:
    inner = ", ".join(expr(i) for i in e.items)
    return f"({inner}{',' if len(e.items) == 1 else ''})" if e.tuple_ else f"[{inner}]"


_NOT = ir.PRECEDENCE["not"]
EXPRS: dict[type, Callable[[Any, float], str]] = {
    ir.Lit: lambda e, parent: show(e.value),
    ir.Var: lambda e, parent: e.name,
    ir.InRef: lambda e, parent: "in",
    ir.GetAttr: lambda e, parent: f"{expr(e.obj, 9)}.{e.name}",
    ir.GetItem: lambda e, parent: f"{expr(e.obj, 9)}[{expr(e.index)}]",
    ir.FuncCall: lambda e, parent: f"{e.func}({', '.join(expr(a) for a in e.args)})",
    ir.ListExpr: _list,
    ir.Neg: lambda e, parent: _paren(f"-{expr(e.operand, 7)}", 7, parent),
    ir.Not: lambda e, parent: _paren(f"not {expr(e.operand, _NOT)}", _NOT, parent),
    ir.Cond: lambda e, parent: _paren(f"{expr(e.then, 1)} if {expr(e.cond, 1)} else "
                                      f"{expr(e.other)}", 0.5, parent),
    ir.BinOp: _binop,
}


def expr(e: Any, parent: float = 0) -> str:
    """Print an expression, parenthesising only where precedence needs it."""
    return ir.rule_for(EXPRS, e, "printer")(e, parent)


def _paren(text: str, prec: float, parent: float) -> str:
    return f"({text})" if prec < parent or (parent == 4 and prec == 4) else text


def _args(args: tuple[ir.Arg, ...]) -> str:
    return ", ".join(f"{a.name}={expr(a.value)}" if a.name else expr(a.value) for a in args)


def output_item(o: ir.OutputDecl) -> str:
    """``train aux if aux``: an output name, its training-only mark and its condition, as
    written."""
    return ("train " if o.train else "") + o.name + _when(o.cond)


def _when(cond: Any) -> str:
    return f" if {expr(cond)}" if cond is not None else ""


def init_rule(rule: ir.InitRule) -> str:
    """``init TARGET [if COND]: scheme(...)``."""
    return f"init {init_target(rule.op)}{_when(rule.cond)}: {element(rule.scheme, '')}"


def init_target(target: str) -> str:
    """An init rule's target as written: an op name bare, a path or pattern quoted."""
    return target if target.isidentifier() else f'"{target}"'


def label(lab: ir.Label) -> str:
    return "".join(p if isinstance(p, str) else "{" + expr(p) + "}" for p in lab.parts)


def _call(el: ir.LayerCall, ind: str) -> str:
    text = el.callee + (f"({_args(el.args)})" if el.args or el.inputs is not None else "")
    return text + (f"({', '.join(el.inputs)})" if el.inputs is not None else "")


def _repeat(el: ir.Repeat, ind: str) -> str:
    var = f" as {el.var}" if el.var else ""
    single = len(el.body) == 1 and isinstance(el.body[0], ir.Chain) and \
        el.body[0].label is None and len(el.body[0].elements) == 1 and \
        isinstance(el.body[0].elements[0], ir.LayerCall)
    tail = element(el.body[0].elements[0], ind) if single else body(el.body, ind)
    return f"repeat {expr(el.count)}{var} {tail}"


def _residual(el: ir.Residual, ind: str) -> str:
    text = f"residual {body(el.body, ind)}"
    if el.shortcut is not None:
        cond = f" if {expr(el.shortcut_if)}" if el.shortcut_if is not None else ""
        text += f" shortcut{cond} {body(el.shortcut, ind)}"
    return text


ELEMENTS: dict[type, Callable[[Any, str], str]] = {
    ir.LayerCall: _call, ir.Repeat: _repeat, ir.Residual: _residual,
    ir.Concat: lambda el, ind: f"concat{'(' + _args(el.args) + ')' if el.args else ''} "
                               f"{body(el.body, ind)}",
    ir.Dense: lambda el, ind: f"dense {body(el.body, ind)}",
    ir.Group: lambda el, ind: body(el.body, ind),
}


def element(el: Any, ind: str) -> str:
    """Text of one chain element (a call or a structure), indented by ``ind``."""
    return ir.rule_for(ELEMENTS, el, "printer")(el, ind)


def body(stmts: tuple[Any, ...], ind: str) -> str:
    inner = ind + "    "
    lines = [inner + stmt(s, inner) for s in stmts]
    return "{\n" + "\n".join(lines) + f"\n{ind}}}"


def stmt(s: Any, ind: str) -> str:
    if isinstance(s, ir.For):
        return f"for {', '.join(s.vars)} in {expr(s.iterable)} {body(s.body, ind)}"
    if isinstance(s, ir.If):
        text = f"if {expr(s.cond)} {body(s.then, ind)}"
        return text + (f" else {body(s.other, ind)}" if s.other is not None else "")
    chain = " -> ".join(element(e, ind) for e in s.elements)
    if s.label is None:
        return chain
    names = ", ".join((label(s.label), *s.more))
    return f"{names}{' =' if s.assign else ':'} {chain}"


def _params(params: tuple[ir.Param, ...]) -> str:
    out = []
    for p in params:
        text = p.name + (f": {p.type}" if p.type != "any" else "")
        out.append(text + (f" = {expr(p.default)}" if p.default is not None else ""))
    return ", ".join(out)


def to_text(spec: ir.Spec) -> str:
    """Print ``spec`` in the text form; parsing the result gives an equal IR."""
    lines = [f'import "{i}"' for i in spec.imports]
    lines.append(f"network {spec.name}" + (f"({_params(spec.params)})" if spec.params else ""))
    for d in spec.inputs:
        lines.append(f"input {d.name}: [{', '.join(expr(x) for x in d.shape)}]")
    if spec.outputs:
        lines.append(f"output {', '.join(map(output_item, spec.outputs))}")
    lines += [init_rule(r) for r in spec.inits]
    for b in spec.blocks:
        text = body(b.body, "")
        if b.inits:
            text = "{\n" + "".join(f"    {init_rule(r)}\n" for r in b.inits) + text[2:]
        inputs = f"({', '.join(b.inputs)})" if b.inputs else ""
        lines += ["", f"block {b.name}({_params(b.params)}){inputs} {text}"]
    lines.append("")
    lines += [stmt(s, "") for s in spec.body]
    return "\n".join(lines) + "\n"

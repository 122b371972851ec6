"""Blocks from repeated scopes, their parameters, and ``repeat`` for runs of equal calls.

A scope's *skeleton* is its statements with every argument value blanked: two scopes of one
class with one skeleton (a dict lookup on its text: near-linear, no pairwise isomorphism test)
are one block. Each argument position is a *slot*; across the instances a slot is a constant
(kept as written), ``in.channels`` (the block input's channels in every instance), an earlier
parameter (the same values), that parameter times or divided by a constant, or a new
parameter named after the argument (``out``, ``stride``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archspec.lang import ir
from archspec.lang.syntax.printer import element as print_element
from archspec.ops import REGISTRY

Fn = Callable[[Any, str], Any]
HOLE = "__block__"
#: words of the language that cannot name a block
KEYWORDS = frozenset({"block", "network", "input", "output", "import", "repeat", "residual",
                      "shortcut", "concat", "dense", "for", "in", "if", "else", "as", "init",
                      "and", "or", "not", "true", "false", "none", "each"})


def map_args(stmts: tuple[Any, ...], fn: Fn) -> tuple[Any, ...]:
    """``stmts`` with every call argument value ``v`` replaced by ``fn(v, hint)``, in order;
    ``hint`` names the argument (its keyword, or the op's or block's parameter at its place)."""
    def call(e: ir.LayerCall) -> ir.LayerCall:
        names = _positional(e.callee)
        args = tuple(a.model_copy(update={"value": fn(a.value, a.name or (
            names[i] if i < len(names) else "arg"))}) for i, a in enumerate(e.args))
        return e.model_copy(update={"args": args})

    def el(e: Any) -> Any:
        if isinstance(e, ir.LayerCall):
            return e if e.callee == HOLE else call(e)
        update: dict[str, Any] = {"body": map_args(e.body, fn)}
        if isinstance(e, ir.Concat):
            update["args"] = call(ir.LayerCall(callee="concat", args=e.args)).args
        if isinstance(e, ir.Residual) and e.shortcut is not None:
            update["shortcut"] = map_args(e.shortcut, fn)
        return e.model_copy(update=update)

    return tuple(s.model_copy(update={"elements": tuple(el(e) for e in s.elements)})
                 for s in stmts)


_BLOCK_PARAMS: dict[str, tuple[str, ...]] = {}


def _positional(callee: str) -> tuple[str, ...]:
    op = REGISTRY.get(callee)
    if op is not None:
        return tuple(n for n, f in op.attrs.model_fields.items() if f.is_required())
    return _BLOCK_PARAMS.get(callee, ())


def placeholder(index: int) -> ir.LayerCall:
    """Stands for the call of instance ``index`` until its block is made."""
    return ir.LayerCall(callee=HOLE, args=(ir.Arg(value=ir.Lit(value=index)),))


def py(e: Any) -> Any:
    """A literal expression's Python value (tuples for tuples), or the expression itself."""
    if isinstance(e, ir.Lit):
        return e.value
    if isinstance(e, ir.ListExpr):
        items = tuple(py(i) for i in e.items)
        return items if e.tuple_ else list(items)
    return e


@dataclass
class Instance:
    """One scope that may become a block call: its class, statements, input shape."""

    cls: str
    body: tuple[Any, ...]
    entry: tuple[int, ...]
    index: int
    worth: bool = True  # False: one plain call, never a block of its own

    @property
    def key(self) -> str:
        blank = map_args(self.body, lambda v, hint: ir.Lit(value=None))
        return f"{self.cls}|{blank!r}"


@dataclass
class Plan:
    """Which instances share a block (pass 1): instance index -> block name."""

    names: dict[int, str] = field(default_factory=dict)


def plan(instances: list[Instance], taken: set[str]) -> Plan:
    """Group instances by skeleton; every group of two or more becomes a block."""
    groups: dict[str, list[Instance]] = {}
    for inst in instances:
        if inst.worth:
            groups.setdefault(inst.key, []).append(inst)
    out = Plan()
    used = set(taken) | set(REGISTRY)
    for members in groups.values():
        if len(members) < 2:
            continue
        base = snake(members[0].cls) if members[0].cls else "unit"
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        for inst in members:
            out.names[inst.index] = name
    return out


def snake(cls: str) -> str:
    """``InvertedResidual`` -> ``inverted_residual``; ``_DenseLayer`` -> ``dense_layer``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls.strip("_")).lower()
    text = re.sub(r"[^a-z0-9_]", "_", text) or "unit"
    text = text if text[0].isalpha() else f"unit_{text}"
    return f"{text}_block" if text in KEYWORDS else text


def _slots(body: tuple[Any, ...]) -> tuple[list[Any], list[str]]:
    values: list[Any] = []
    hints: list[str] = []

    def grab(v: Any, hint: str) -> Any:
        values.append(py(v))
        hints.append(hint)
        return v

    map_args(body, grab)
    return values, hints


def _derive(col: tuple[Any, ...], params: list[tuple[str, tuple[Any, ...]]],
            entries: list[tuple[int, ...]]) -> Any | None:
    """An expression for a slot's values ``col`` from ``in`` or earlier params, or None."""
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in col)
    if ints and all(e and v == e[0] for v, e in zip(col, entries)):
        return ir.GetAttr(obj=ir.InRef(), name="channels")
    for name, pcol in params:
        if pcol == col:
            return ir.Var(name=name)
    if not ints:
        return None
    for name, pcol in params:
        if not all(isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in pcol):
            continue
        if all(v % p == 0 for v, p in zip(col, pcol)):
            ks = {v // p for v, p in zip(col, pcol)}
            if len(ks) == 1 and (k := ks.pop()) > 1:
                return ir.BinOp(op="*", left=ir.Var(name=name), right=ir.Lit(value=k))
        ks = {p // v for v, p in zip(col, pcol) if v}
        if len(ks) == 1 and (k := ks.pop()) > 1 and all(p == v * k for v, p in zip(col, pcol)):
            return ir.BinOp(op="//", left=ir.Var(name=name), right=ir.Lit(value=k))
    return None


def _type(col: tuple[Any, ...]) -> str:
    kinds = {type(v) for v in col}
    for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if kinds == {t}:
            return name
    return "any"


def make_block(name: str, members: list[Instance]) -> tuple[ir.BlockDef, dict[int, Any]]:
    """The block of ``members`` and each member's call."""
    table = [_slots(m.body) for m in members]
    hints = table[0][1]
    cols = list(zip(*(values for values, _ in table)))
    params: list[tuple[str, tuple[Any, ...]]] = []
    exprs: list[Any] = []
    for col, hint in zip(cols, hints):
        if all(v == col[0] for v in col):
            exprs.append(None)
            continue
        found = _derive(col, params, [m.entry for m in members])
        if found is None:
            pname, n = hint if hint.isidentifier() else "arg", 2
            while pname in {p for p, _ in params} or pname == "in":
                pname, n = f"{hint}{n}", n + 1
            params.append((pname, col))
            found = ir.Var(name=pname)
        exprs.append(found)
    it = iter(exprs)
    body = map_args(members[0].body, lambda v, hint: next(it) or v)
    _BLOCK_PARAMS[name] = tuple(p for p, _ in params)
    block = ir.BlockDef(name=name, params=tuple(ir.Param(name=p, type=_type(c))
                                                for p, c in params), body=body)
    calls = {m.index: ir.LayerCall(callee=name, args=tuple(
        ir.Arg(value=_expr(c[i])) for _, c in params)) for i, m in enumerate(members)}
    return block, calls


def _expr(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return ir.ListExpr(items=tuple(_expr(x) for x in v), tuple_=isinstance(v, tuple))
    return ir.Lit(value=v)


def fill_holes(stmts: tuple[Any, ...], calls: dict[int, Any]) -> tuple[Any, ...]:
    """``stmts`` with the placeholders of ``calls`` replaced by those calls."""
    def el(e: Any) -> Any:
        if isinstance(e, ir.LayerCall):
            if e.callee == HOLE and e.args[0].value.value in calls:
                return calls[e.args[0].value.value].model_copy(update={"inputs": e.inputs})
            return e
        update: dict[str, Any] = {"body": fill_holes(e.body, calls)}
        if isinstance(e, ir.Residual) and e.shortcut is not None:
            update["shortcut"] = fill_holes(e.shortcut, calls)
        return e.model_copy(update=update)

    return tuple(s.model_copy(update={"elements": tuple(el(e) for e in s.elements)})
                 for s in stmts)


def tidy(stmts: tuple[Any, ...]) -> tuple[Any, ...]:
    """Labels that equal positions dropped (the expander numbers items the same), then runs
    of equal unlabelled block calls as ``repeat n call``."""
    stmts = tuple(s.model_copy(update={"label": None}) if isinstance(s, ir.Chain) and
                  s.label is not None and not s.assign and s.label.parts == (str(i),) and
                  len(s.elements) == 1 and isinstance(s.elements[0], ir.LayerCall) else s
                  for i, s in enumerate(stmts))
    out: list[Any] = []
    for s in stmts:
        if out and _repeatable(s) and _repeatable(out[-1]):
            prev = out[-1].elements[0]
            body = prev.body[0] if isinstance(prev, ir.Repeat) else out[-1]
            if body == s:
                n = prev.count.value + 1 if isinstance(prev, ir.Repeat) else 2
                out[-1] = ir.Chain(elements=(ir.Repeat(count=ir.Lit(value=n), body=(body,)),))
                continue
        out.append(s)
    return tuple(out)


def _repeatable(s: Any) -> bool:
    if not isinstance(s, ir.Chain) or s.label is not None or len(s.elements) != 1:
        return False
    e = s.elements[0]
    if isinstance(e, ir.Repeat):
        return len(e.body) == 1 and _repeatable(e.body[0])
    return isinstance(e, ir.LayerCall) and e.inputs is None and e.callee not in REGISTRY


def compact(stmts: tuple[Any, ...], width: int = 96) -> tuple[Any, ...]:
    """``label: { a; b }`` of plain calls as ``label: a -> b`` where that fits one line."""
    out = []
    for s in stmts:
        if isinstance(s, ir.Chain) and len(s.elements) == 1 and \
                isinstance(s.elements[0], ir.Group):
            inner = compact(s.elements[0].body, width)
            flat = [e for c in inner for e in c.elements] if all(
                isinstance(c, ir.Chain) and c.label is None and len(c.elements) == 1 and
                isinstance(c.elements[0], ir.LayerCall | ir.Repeat) and
                not (isinstance(c.elements[0], ir.LayerCall) and c.elements[0].inputs)
                for c in inner) else None
            if flat and (len(flat) > 1 or isinstance(flat[0], ir.Repeat)) and s.label and \
                    sum(len(print_element(e, "")) + 4 for e in flat) <= width:
                s = s.model_copy(update={"elements": tuple(flat)})
            else:
                s = s.model_copy(update={"elements": (ir.Group(body=inner),)})
        elif isinstance(s, ir.Chain):
            s = s.model_copy(update={"elements": tuple(_compact_el(e, width)
                                                       for e in s.elements)})
        out.append(s)
    return tuple(out)


def _compact_el(e: Any, width: int) -> Any:
    if isinstance(e, ir.Residual):
        short = compact(e.shortcut, width) if e.shortcut is not None else None
        return e.model_copy(update={"body": compact(e.body, width), "shortcut": short})
    if isinstance(e, ir.Concat | ir.Group):
        return e.model_copy(update={"body": compact(e.body, width)})
    return e


def map_bodies(stmts: tuple[Any, ...], fn: Callable[[tuple[Any, ...]], tuple[Any, ...]]
               ) -> tuple[Any, ...]:
    """``fn`` applied to every statement list inside ``stmts`` (innermost first), then to
    ``stmts`` itself."""
    def el(e: Any) -> Any:
        if isinstance(e, ir.LayerCall):
            return e
        update: dict[str, Any] = {"body": map_bodies(e.body, fn)}
        if isinstance(e, ir.Residual) and e.shortcut is not None:
            update["shortcut"] = map_bodies(e.shortcut, fn)
        return e.model_copy(update=update)

    inner = tuple(s.model_copy(update={"elements": tuple(el(e) for e in s.elements)})
                  for s in stmts)
    return fn(inner)


def finish(stmts: tuple[Any, ...]) -> tuple[Any, ...]:
    """Defaults left out, repeats found and groups compacted everywhere in ``stmts``."""
    return compact(map_bodies(drop_defaults(stmts), tidy))


def drop_defaults(stmts: tuple[Any, ...]) -> tuple[Any, ...]:
    """``stmts`` without op arguments that equal the op's default value."""
    def call(e: ir.LayerCall) -> ir.LayerCall:
        op = REGISTRY.get(e.callee)
        if op is None:
            return e
        fields = op.attrs.model_fields
        keep = tuple(a for a in e.args if a.name is None or a.name not in fields or
                     fields[a.name].is_required() or py(a.value) != _norm(fields[a.name].default))
        return e.model_copy(update={"args": keep})

    def el(e: Any) -> Any:
        if isinstance(e, ir.LayerCall):
            return call(e)
        update: dict[str, Any] = {"body": drop_defaults(e.body)}
        if isinstance(e, ir.Concat):
            update["args"] = call(ir.LayerCall(callee="concat", args=e.args)).args
        if isinstance(e, ir.Residual) and e.shortcut is not None:
            update["shortcut"] = drop_defaults(e.shortcut)
        return e.model_copy(update=update)

    return tuple(s.model_copy(update={"elements": tuple(el(e) for e in s.elements)})
                 for s in stmts)


def _norm(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v

"""One scope's items as units, and the structure found among them: residuals and concats.

A *unit* is one statement to be: a lifted op, a lowered child scope (a group or a block
call), or a residual/concat made of other units. Each reads external values (``ins``) and
produces one (``out``). The patterns are local and linear in the number of units: for an
``add`` (or ``concat``) each input is followed back along single-consumer chains to the value
they fork from; when every input forks from the same value, the chains are the branches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from archspec.lang import ir


@dataclass
class Unit:
    """A statement to be. ``element``: its IR element (a call or a structure); ``label``: its
    name relative to the scope, or None (the expander numbers it by position); ``keyed``:
    whether the label names state_dict keys (False for a stateless layer)."""

    ins: list[str]
    out: str
    element: Any
    label: str | None = None
    op: str = ""
    members: list[Unit] = field(default_factory=list)
    keyed: bool = True


def label_of(text: str) -> ir.Label:
    """A label for a module path; characters a name cannot hold become string holes
    (torchvision's ``block1-0`` is ``block1{"-"}0``)."""
    parts: list[str | ir.Expr] = []
    for piece in re.split(r"([^A-Za-z0-9_.]+)", text):
        if piece:
            parts.append(piece if re.fullmatch(r"[A-Za-z0-9_.]+", piece) else
                         ir.Lit(value=piece))
    return ir.Label(parts=tuple(parts))


def stmt_of(u: Unit) -> ir.Chain:
    """The unit as a statement: ``label: element`` or a bare element."""
    lab = label_of(u.label) if u.label else None
    return ir.Chain(label=lab, elements=(u.element,))


def branch_stmt(chain: list[Unit]) -> ir.Chain:
    """A chain of units as one statement: one unit as it is, several inside an unlabelled
    group (which opens no scope, so every unit keeps its label)."""
    if len(chain) == 1:
        return stmt_of(chain[0])
    return ir.Chain(elements=(ir.Group(body=tuple(stmt_of(u) for u in chain)),))


class Finder:
    """Residual and concat patterns among ``units`` (in topological order); ``outside`` holds
    the values read after the scope (they must stay visible)."""

    def __init__(self, units: list[Unit], outside: set[str]) -> None:
        self.units = units
        self.outside = outside

    def _index(self) -> tuple[dict[str, int], dict[str, list[int]]]:
        producer = {u.out: i for i, u in enumerate(self.units)}
        readers: dict[str, list[int]] = {}
        for i, u in enumerate(self.units):
            for v in u.ins:
                readers.setdefault(v, []).append(i)
        return producer, readers

    def _back(self, v: str, reader: int, producer: dict[str, int],
              readers: dict[str, list[int]]) -> tuple[str, list[int]]:
        """Follow ``v`` back along units with one input whose output only the next one reads:
        (the value the chain forks from, the chain's unit indices in order)."""
        chain: list[int] = []
        while v in producer and readers.get(v) == [reader] and v not in self.outside:
            p = producer[v]
            if len(self.units[p].ins) != 1:
                break
            chain.insert(0, p)
            reader, v = p, self.units[p].ins[0]
        return v, chain

    def run(self) -> list[Unit]:
        """The units with every residual and concat found folded into one unit."""
        changed = True
        while changed:
            changed = False
            for k, u in enumerate(self.units):
                if u.op in ("add", "concat") and u.label is None and len(u.ins) >= 2 \
                        and len(set(u.ins)) == len(u.ins) and self._fold(k):
                    changed = True
                    break
        return self.units

    def _fold(self, k: int) -> bool:
        producer, readers = self._index()
        u = self.units[k]
        found = [self._back(v, k, producer, readers) for v in u.ins]
        forks = {f for f, _ in found}
        if len(forks) != 1:
            return False
        fork = forks.pop()
        chains = [c for _, c in found]
        if u.op == "add":
            if len(chains) != 2 or not any(chains):
                return False
            body, short = sorted(chains, key=len, reverse=True)
            element: Any = ir.Residual(
                body=tuple(stmt_of(self.units[i]) for i in body),
                shortcut=tuple(stmt_of(self.units[i]) for i in short) if short else None)
        else:
            if not all(chains):
                return False
            args = tuple(a for a in u.element.args)
            element = ir.Concat(args=args, body=tuple(
                branch_stmt([self.units[i] for i in c]) for c in chains))
        taken = sorted({i for c in chains for i in c} | {k})
        merged = Unit([fork], u.out, element, None, "structure",
                      [self.units[i] for i in taken])
        first = taken[0]
        self.units = [x for i, x in enumerate(self.units) if i not in taken]
        self.units.insert(first, merged)
        return True

"""`archspec diff A B`: two analysed networks side by side, aligned by layer and block name.

Rows are the visible rows of each report at ``depth`` (as `check --depth` shows them), aligned
by name in order (a longest-matching-blocks alignment, so ResNet-34's extra blocks show as
added between the blocks both networks share). A row in both is ``same`` or ``changed`` (op,
shape, params, MACs or memory differ); a row in one only is ``added`` or ``removed``.
Totals carry both values and their difference. Shapes are per sample; counts are for the
reports' batch.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from archspec.analysis.report import Analysis, Row, visible_rows

# What a row compares, beside its op: Row attribute -> column name.
COMPARED = {"params": "params", "macs": "macs", "activation_bytes": "memory"}
# Totals compared, in the order they are printed.
TOTALS = ("params", "buffers", "macs", "flops", "activation_bytes", "peak_activation_bytes",
          "layers")


@dataclass(frozen=True)
class DiffRow:
    """One aligned row: ``a`` and ``b`` are the two sides (None where the row is absent)."""

    name: str
    status: str
    a: Row | None
    b: Row | None

    @property
    def depth(self) -> int:
        return (self.a or self.b).depth  # type: ignore[union-attr]

    def value(self, side: str, attr: str) -> int:
        row = self.a if side == "a" else self.b
        return getattr(row, attr) if row is not None else 0

    def delta(self, attr: str) -> int:
        return self.value("b", attr) - self.value("a", attr)


@dataclass(frozen=True)
class Diff:
    """The aligned rows of two reports and their totals."""

    a: Analysis
    b: Analysis
    depth: int | None
    rows: list[DiffRow]

    def totals(self) -> dict[str, tuple[int, int]]:
        """Each total of :data:`TOTALS` as ``(a, b)``."""
        return {k: (self.a.totals[k], self.b.totals[k]) for k in TOTALS}

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract: networks, rows (per-sample shapes, counts per side) and totals."""
        def side(row: Row | None) -> dict[str, Any] | None:
            if row is None:
                return None
            return {"op": row.op, "kind": row.kind, "output_shape": list(row.output_shape[1:]),
                    "params": row.params, "macs": row.macs, "flops": row.flops,
                    "memory_bytes": row.activation_bytes}

        return {"a": self.a.network, "b": self.b.network, "depth": self.depth,
                "rows": [{"name": r.name, "status": r.status, "a": side(r.a), "b": side(r.b)}
                         for r in self.rows],
                "totals": {k: {"a": a, "b": b, "delta": b - a}
                           for k, (a, b) in self.totals().items()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


def _status(a: Row, b: Row) -> str:
    differs = a.op != b.op or a.output_shape[1:] != b.output_shape[1:] or any(
        getattr(a, k) != getattr(b, k) for k in COMPARED)
    return "changed" if differs else "same"


def diff(a: Analysis, b: Analysis, depth: int | None = 2) -> Diff:
    """Align the rows of ``a`` and ``b`` visible at ``depth`` (None: every layer) by name."""
    rows_a = list(visible_rows(a, depth))
    rows_b = list(visible_rows(b, depth))
    names_a = [r.name for r in rows_a]
    names_b = [r.name for r in rows_b]
    out: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(None, names_a, names_b, autojunk=False)
    for tag, i0, i1, j0, j1 in matcher.get_opcodes():
        if tag == "equal":
            out += [DiffRow(x.name, _status(x, y), x, y)
                    for x, y in zip(rows_a[i0:i1], rows_b[j0:j1])]
            continue
        out += [DiffRow(x.name, "removed", x, None) for x in rows_a[i0:i1]]
        out += [DiffRow(y.name, "added", None, y) for y in rows_b[j0:j1]]
    return Diff(a, b, depth, out)

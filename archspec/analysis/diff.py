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

from archspec.analysis.render import human, visible_rows
from archspec.analysis.report import Report, Row
from archspec.ops.base import fmt_shape

# What a row compares, beside its op: Row attribute -> column name.
COMPARED = {"params": "params", "macs": "macs", "activation_bytes": "memory"}
# Totals compared, in the order they are printed.
TOTALS = ("params", "buffers", "macs", "flops", "activation_bytes", "peak_activation_bytes",
          "layers")
_MARK = {"same": " ", "changed": "~", "added": "+", "removed": "-"}


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

    a: Report
    b: Report
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


def diff(a: Report, b: Report, depth: int | None = 2) -> Diff:
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


def _signed(n: int, unit: str = "") -> str:
    if n == 0:
        return "0"
    return ("+" if n > 0 else "-") + human(abs(n), unit).strip()


def _percent(a: int, b: int) -> str:
    if a == b:
        return ""
    return f"{(b - a) / a:+.1%}" if a else "new"


def _either(a: str | None, b: str | None) -> str:
    """One side's text when the other is absent or equal, else ``a -> b``."""
    if a is None or b is None or a == b:
        return a if b is None else b
    return f"{a} -> {b}"


def _shape(r: DiffRow) -> str:
    return _either(*(fmt_shape(tuple(x.output_shape[1:])) if x else None for x in (r.a, r.b)))


def _op(r: DiffRow) -> str:
    return _either(*(x.op if x else None for x in (r.a, r.b)))


def _cells(r: DiffRow) -> list[str]:
    cells = [_op(r), _shape(r)]
    for attr in COMPARED:
        a, b = r.value("a", attr), r.value("b", attr)
        unit = "B" if attr == "activation_bytes" else ""
        cells += [human(a, unit) if r.a else "-", human(b, unit) if r.b else "-",
                  _signed(b - a, unit)]
    return cells


_HEAD = ["Layer", "Op", "Output shape", "Params A", "Params B", "dParams", "MACs A", "MACs B",
         "dMACs", "Memory A", "Memory B", "dMemory"]


def _total_lines(d: Diff) -> list[list[str]]:
    names = {"activation_bytes": "activation memory", "peak_activation_bytes": "peak memory"}
    out = []
    for key, (a, b) in d.totals().items():
        unit = "B" if key.endswith("bytes") else ""
        out.append([names.get(key, key), f"{a:,}", f"{b:,}", f"{b - a:+,}", _percent(a, b),
                    f"({_signed(b - a, unit)})"])
    return out


def _label(r: DiffRow, full: bool) -> str:
    """The row's name: indented last part under its block, or the whole dotted path when
    ``full`` (rows left out would leave the indentation without its parent)."""
    if full or not r.depth:
        return r.name
    return "  " * r.depth + r.name.rsplit(".", 1)[-1]


def table(d: Diff, only_changes: bool = False) -> str:
    """A terminal table: one line per aligned row (``+`` added, ``-`` removed, ``~`` changed),
    then the totals of A and B with their difference."""
    lines = [f"A: {d.a.network}    B: {d.b.network}    (depth {d.depth or 'all'}; "
             f"{sum(r.status != 'same' for r in d.rows)} of {len(d.rows)} rows differ)"]
    rows = [_HEAD] + [[_MARK[r.status] + " " + _label(r, only_changes), *_cells(r)]
                      for r in d.rows if not (only_changes and r.status == "same")]
    lines += _aligned(rows, left=3)
    lines += ["", *_aligned([["Total", "A", "B", "B - A", "", ""], *_total_lines(d)], left=1)]
    return "\n".join(lines)


def _aligned(rows: list[list[str]], left: int) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    out = [rule]
    for i, row in enumerate(rows):
        cells = [c.ljust(w) if j < left else c.rjust(w) for j, (c, w) in
                 enumerate(zip(row, widths))]
        out.append("  ".join(cells).rstrip())
        if i == 0:
            out.append(rule)
    return [*out, rule]


def markdown(d: Diff, only_changes: bool = False) -> str:
    """GitHub-flavoured Markdown: the aligned rows, then the totals."""
    lines = [f"## {d.a.network} -> {d.b.network}", "", "| | " + " | ".join(_HEAD) + " |",
             "|---|---|---|---|" + "--:|" * (len(_HEAD) - 3)]
    for r in d.rows:
        if not (only_changes and r.status == "same"):
            lines.append(f"| {_MARK[r.status].strip()} | `{r.name}` | " + " | ".join(_cells(r))
                         + " |")
    lines += ["", "| Total | A | B | B - A | change |", "|---|--:|--:|--:|--:|"]
    lines += [f"| {n} | {a} | {b} | {dl} | {pc} |" for n, a, b, dl, pc, _ in _total_lines(d)]
    return "\n".join(lines)

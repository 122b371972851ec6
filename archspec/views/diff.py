"""`archspec diff` as text: the aligned rows of a :class:`~archspec.analysis.diff.Diff` as a
terminal table and as Markdown, with the totals and their deltas. Names are escaped as in
:mod:`archspec.views.table`: for the terminal, and as Markdown code spans or text."""

from __future__ import annotations

from collections.abc import Callable

from archspec.analysis.diff import COMPARED, Diff, DiffRow
from archspec.lang.diagnostics import printable
from archspec.ops.base import fmt_shape
from archspec.views.table import code_span, human, md_text, op_cell

_MARK = {"same": " ", "changed": "~", "added": "+", "removed": "-"}


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


def _terminal(text: str) -> str:
    return printable(text, " ")


def _md_op(text: str) -> str:
    """The op cell of a Markdown row: ``a -> b`` when it changed, each side by ``op_cell``."""
    return " -> ".join(op_cell(side) for side in text.split(" -> "))


def _cells(r: DiffRow, name: Callable[[str], str] = _terminal) -> list[str]:
    """The op (through ``name``, an escape), shape and compared numbers of a row."""
    cells = [name(_op(r)), _shape(r)]
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
    lines = [f"A: {_terminal(d.a.network)}    B: {_terminal(d.b.network)}    "
             f"(depth {d.depth or 'all'}; "
             f"{sum(r.status != 'same' for r in d.rows)} of {len(d.rows)} rows differ)"]
    rows = [_HEAD] + [[_MARK[r.status] + " " + _terminal(_label(r, only_changes)), *_cells(r)]
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
    lines = [f"## {md_text(d.a.network)} -> {md_text(d.b.network)}", "",
             "| | " + " | ".join(_HEAD) + " |",
             "|---|---|---|---|" + "--:|" * (len(_HEAD) - 3)]
    for r in d.rows:
        if not (only_changes and r.status == "same"):
            lines.append(f"| {_MARK[r.status].strip()} | {code_span(r.name)} | "
                         + " | ".join(_cells(r, _md_op)) + " |")
    lines += ["", "| Total | A | B | B - A | change |", "|---|--:|--:|--:|--:|"]
    lines += [f"| {n} | {a} | {b} | {dl} | {pc} |" for n, a, b, dl, pc, _ in _total_lines(d)]
    return "\n".join(lines)

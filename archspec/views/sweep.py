"""`archspec sweep` as text: one line per variant as a terminal table or CSV.

The terminal table shows escaped whatever a terminal acts on; CSV cells that a spreadsheet
would read as a formula (text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return) are prefixed with ``'``; numbers, negative ones included, stay numbers.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from archspec.analysis.sweep import COLUMNS, Variant
from archspec.lang.diagnostics import Diagnostic, printable
from archspec.views.table import human, mb


def value_text(value: Any) -> str:
    """An axis value as a short text: shapes as ``3x224x224``, strings and lists as JSON."""
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return json.dumps(value) if isinstance(value, (str, list, bool)) else str(value)


def _error_text(d: Diagnostic) -> str:
    """A refused variant's diagnostic on one line, with anything a terminal acts on escaped
    (the message may quote the spec)."""
    return printable(f"{d.code} at line {d.span.line}: {d.message}", " ")


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell: numbers as they are; text that a spreadsheet would run as a formula
    (``=1+1``, ``@SUM(A1)``, ``-2+3``) with a ``'`` in front, which shows it as text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = value if isinstance(value, str) else value_text(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def to_csv(variants: list[Variant]) -> str:
    """One row per variant: the axis values, :data:`COLUMNS`, and the error (empty if none);
    every text cell through :func:`csv_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = list(variants[0].values) if variants else []
    writer.writerow([csv_cell(n) for n in [*names, *COLUMNS, "error"]])
    for v in variants:
        totals = [v.totals[k] for k in COLUMNS] if v.totals else [""] * len(COLUMNS)
        writer.writerow([*(csv_cell(_axis_cell(v.values[k])) for k in names), *totals,
                         csv_cell(_error_text(v.error)) if v.error else ""])
    return buffer.getvalue()


def _axis_cell(value: Any) -> Any:
    """An axis value as a CSV cell: a number as itself, anything else as its text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return value_text(value)


def _shown(value: Any) -> str:
    """An axis value for the terminal: its text with terminal escapes shown escaped."""
    return printable(value_text(value), " ")


def _cells(totals: dict[str, int]) -> list[str]:
    return [human(totals["params"]), human(totals["macs"]), human(totals["flops"]),
            mb(totals["activation_bytes"]), mb(totals["peak_activation_bytes"]),
            f"{totals['layers']:,}"]


def table(variants: list[Variant]) -> str:
    """A terminal table, one line per variant (axis values left, counts in engineering units
    right; a refused variant shows its error instead of counts), then how many were refused."""
    names = list(variants[0].values) if variants else []
    rows = [[*(printable(n, " ") for n in names), "Params", "MACs", "FLOPs", "Activations",
             "Peak", "Layers"]]
    rows += [[*(_shown(v.values[k]) for k in names), *_cells(v.totals)]
             for v in variants if v.totals is not None]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for v in variants:
        values = [_shown(v.values[k]) for k in names]
        cells = _cells(v.totals) if v.totals is not None else []
        line = "  ".join([*(c.ljust(w) for c, w in zip(values, widths)),
                          *(c.rjust(w) for c, w in zip(cells, widths[len(names):]))])
        lines.append(line if v.error is None else f"{line}  error: {_error_text(v.error)}")
    head = "  ".join(c.ljust(w) if i < len(names) else c.rjust(w)
                     for i, (c, w) in enumerate(zip(rows[0], widths)))
    refused = sum(v.error is not None for v in variants)
    return "\n".join([head, "-" * len(head), *lines, "",
                      f"{len(variants)} variants, {refused} refused"])

"""`archspec sweep`: one spec analysed at every combination of parameter and input values.

The spec is read and parsed once; each variant is the parsed spec with overrides applied, then
expanded and analysed in the same process. A variant the spec rejects (a shape that no longer
fits, an index out of range) is kept with its diagnostic instead of stopping the sweep.
Counts are for the given batch; memory in bytes of the given dtype.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from archspec import ir
from archspec.analysis.report import analyze
from archspec.diagnostics import ArchspecError, Diagnostic, printable
from archspec.syntax.loader import with_input_shapes, with_overrides

# At most this many variants in one sweep: each takes milliseconds to seconds, so more is a
# typo in a value list (or a product of long lists) rather than a plan.
MAX_VARIANTS = 100_000
# The totals each variant reports, in column order.
COLUMNS = ("params", "macs", "flops", "activation_bytes", "peak_activation_bytes", "layers")
# Axis names of input shapes are written ``input:NAME``.
INPUT_PREFIX = "input:"


@dataclass(frozen=True)
class Variant:
    """One combination: ``values`` maps each axis (a parameter, or ``input:NAME``) to its
    value; ``totals`` has :data:`COLUMNS` or ``error`` the diagnostic that refused it."""

    values: dict[str, Any]
    totals: dict[str, int] | None
    error: Diagnostic | None = None


def count(axes: dict[str, list[Any]]) -> int:
    """How many variants ``axes`` make (the product of their lengths)."""
    n = 1
    for values in axes.values():
        n *= len(values)
    return n


def combinations(axes: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """Every combination of the axes' values, the last axis varying fastest."""
    names = list(axes)
    for values in itertools.product(*axes.values()):
        yield dict(zip(names, values))


def _variant(spec: ir.Spec, values: dict[str, Any]) -> ir.Spec:
    params = {k: v for k, v in values.items() if not k.startswith(INPUT_PREFIX)}
    shapes = {k[len(INPUT_PREFIX):]: v for k, v in values.items() if k.startswith(INPUT_PREFIX)}
    spec = with_overrides(spec, params)
    return with_input_shapes(spec, shapes) if shapes else spec


def sweep(spec: ir.Spec, axes: dict[str, list[Any]], **options: Any) -> list[Variant]:
    """Analyse ``spec`` at every combination of ``axes`` (parameter name -> values; input
    ``input:NAME`` -> per-sample shapes). ``options`` go to :func:`analyze` (batch, dtype,
    convention). Unknown parameter or input names raise before any variant runs."""
    if count(axes) > MAX_VARIANTS:
        raise ValueError(f"{count(axes)} variants; at most {MAX_VARIANTS}")
    _variant(spec, {k: v[0] for k, v in axes.items() if v})  # names are checked here
    out = []
    for values in combinations(axes):
        try:
            report = analyze(_variant(spec, values), **options)
        except ArchspecError as exc:
            out.append(Variant(values, None, exc.diagnostic))
            continue
        out.append(Variant(values, {k: report.totals[k] for k in COLUMNS}))
    return out


def value_text(value: Any) -> str:
    """An axis value as a short text: shapes as ``3x224x224``, strings and lists as JSON."""
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return json.dumps(value) if isinstance(value, (str, list, bool)) else str(value)


def _error_text(d: Diagnostic) -> str:
    """A refused variant's diagnostic on one line, with anything a terminal acts on escaped
    (the message may quote the spec)."""
    return printable(f"{d.code} at line {d.span.line}: {d.message}", " ")


def to_dict(variants: list[Variant]) -> list[dict[str, Any]]:
    """The JSON contract: one object per variant with ``values``, ``totals`` and ``error``
    (input shapes as lists)."""
    return [{"values": {k: list(v) if isinstance(v, tuple) else v for k, v in x.values.items()},
             "totals": x.totals,
             "error": None if x.error is None else {
                 "code": x.error.code, "message": x.error.message, "file": x.error.span.file,
                 "line": x.error.span.line, "col": x.error.span.col}} for x in variants]


def to_csv(variants: list[Variant]) -> str:
    """One row per variant: the axis values, :data:`COLUMNS`, and the error (empty if none)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = list(variants[0].values) if variants else []
    writer.writerow([*names, *COLUMNS, "error"])
    for v in variants:
        totals = [v.totals[k] for k in COLUMNS] if v.totals else [""] * len(COLUMNS)
        writer.writerow([*(value_text(v.values[k]) for k in names), *totals,
                         _error_text(v.error) if v.error else ""])
    return buffer.getvalue()


def _cells(totals: dict[str, int]) -> list[str]:
    from archspec.analysis.render import human, mb

    return [human(totals["params"]), human(totals["macs"]), human(totals["flops"]),
            mb(totals["activation_bytes"]), mb(totals["peak_activation_bytes"]),
            f"{totals['layers']:,}"]


def table(variants: list[Variant]) -> str:
    """A terminal table, one line per variant (axis values left, counts in engineering units
    right; a refused variant shows its error instead of counts), then how many were refused."""
    names = list(variants[0].values) if variants else []
    rows = [[*names, "Params", "MACs", "FLOPs", "Activations", "Peak", "Layers"]]
    rows += [[*(value_text(v.values[k]) for k in names), *_cells(v.totals)]
             for v in variants if v.totals is not None]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for v in variants:
        values = [value_text(v.values[k]) for k in names]
        cells = _cells(v.totals) if v.totals is not None else []
        line = "  ".join([*(c.ljust(w) for c, w in zip(values, widths)),
                          *(c.rjust(w) for c, w in zip(cells, widths[len(names):]))])
        lines.append(line if v.error is None else f"{line}  error: {_error_text(v.error)}")
    head = "  ".join(c.ljust(w) if i < len(names) else c.rjust(w)
                     for i, (c, w) in enumerate(zip(rows[0], widths)))
    refused = sum(v.error is not None for v in variants)
    return "\n".join([head, "-" * len(head), *lines, "",
                      f"{len(variants)} variants, {refused} refused"])

"""`archspec sweep`: one spec analysed at every combination of parameter and input values.

The spec is read and parsed once; each variant is the parsed spec with overrides applied, then
expanded and analysed in the same process. A variant the spec rejects (a shape that no longer
fits, an index out of range) is kept with its diagnostic instead of stopping the sweep.
Counts are for the given batch; memory in bytes of the given dtype.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from archspec.analysis.report import analyze
from archspec.lang import ir
from archspec.lang.diagnostics import ArchspecError, Diagnostic, error
from archspec.lang.syntax.loader import with_input_shapes, with_overrides

# At most this many variants in one sweep: each takes milliseconds to seconds, so more is a
# typo in a value list (or a product of long lists) rather than a plan.
MAX_VARIANTS = 100_000
MAX_SWEEP_LAYERS = 2_000_000
"""The most layers one sweep expands and analyses, all variants together (E710): about three
minutes at the 10,000 layers a second of docs/sweep.md's benchmark on 2 cores. 100,000 variants
of an 18,000-layer spec (two days) are refused after the first variant, not run."""
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
    out: list[Variant] = []
    total, done, widest = count(axes), 0, 0
    for values in combinations(axes):
        try:
            report = analyze(_variant(spec, values), **options)
        except ArchspecError as exc:
            out.append(Variant(values, None, exc.diagnostic))
            done += widest
            continue
        out.append(Variant(values, {k: report.totals[k] for k in COLUMNS}))
        layers = report.totals["layers"]
        widest, done = max(widest, layers), done + layers
        check_layers(spec, total, len(out), layers, done + layers * (total - len(out)))
    return out


def check_layers(spec: ir.Spec, variants: int, index: int, layers: int, estimate: int) -> None:
    """Refuse (E710, at the network line) a sweep of ``variants`` whose variant ``index``
    (1-based) has ``layers`` layers, when the layers done plus the rest at that size make an
    ``estimate`` above :data:`MAX_SWEEP_LAYERS`: before the second variant when the first says
    so, and as soon as a larger variant does."""
    if estimate > MAX_SWEEP_LAYERS:
        raise error("E710", f"this sweep would expand about {estimate:,} layers ({variants:,} "
                    f"variants, variant {index:,} of {layers:,} layers); a sweep expands at "
                    f"most {MAX_SWEEP_LAYERS:,}", spec.span,
                    "sweep fewer values (--set, --input), or a smaller network")


def to_dict(variants: list[Variant]) -> list[dict[str, Any]]:
    """The JSON contract: one object per variant with ``values``, ``totals`` and ``error``
    (input shapes as lists)."""
    return [{"values": {k: list(v) if isinstance(v, tuple) else v for k, v in x.values.items()},
             "totals": x.totals,
             "error": None if x.error is None else {
                 "code": x.error.code, "message": x.error.message, "file": x.error.span.file,
                 "line": x.error.span.line, "col": x.error.span.col}} for x in variants]

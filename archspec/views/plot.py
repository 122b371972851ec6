"""`archspec sweep --plot out.png`: params against MACs, one marker per variant, its area
proportional to the variant's activation memory. Needs matplotlib (the `plot` extra)."""

from __future__ import annotations

import io

from archspec.analysis.sweep import Variant
from archspec.lang.extras import missing_extra
from archspec.lang.source import Span
from archspec.views.sweep import value_text

# Marker areas (points^2) of the smallest and the largest activation memory in the sweep.
MIN_AREA, MAX_AREA = 30.0, 900.0
# Points are labelled with their values only up to this many (beyond, labels would overlap).
MAX_LABELS = 40


def _areas(memory: list[int]) -> list[float]:
    lo, hi = min(memory), max(memory)
    if hi == lo:
        return [MIN_AREA + (MAX_AREA - MIN_AREA) / 4] * len(memory)
    return [MIN_AREA + (MAX_AREA - MIN_AREA) * (m - lo) / (hi - lo) for m in memory]


def plot(variants: list[Variant], title: str, fmt: str, where: Span) -> bytes:
    """A scatter of params (x) against MACs (y) of the variants that analysed, log axes, marker
    area by activation memory, as ``fmt`` bytes ("png", "svg" or "pdf"). A missing matplotlib
    is an error located at ``where`` (the spec)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise missing_extra("--plot", "plot", at=where) from None
    ok = [v for v in variants if v.totals is not None]
    fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
    try:
        if ok:
            memory = [v.totals["activation_bytes"] for v in ok]  # type: ignore[index]
            ax.scatter([v.totals["params"] for v in ok],  # type: ignore[index]
                       [v.totals["macs"] for v in ok],  # type: ignore[index]
                       s=_areas(memory), alpha=0.6, edgecolors="black", linewidths=0.5)
            ax.set_xscale("log")
            ax.set_yscale("log")
            if len(ok) <= MAX_LABELS:
                for v in ok:
                    label = ", ".join(f"{k}={value_text(x)}" for k, x in v.values.items())
                    ax.annotate(label, (v.totals["params"], v.totals["macs"]),  # type: ignore[index]
                                fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel("parameters")
        ax.set_ylabel("MACs")
        ax.set_title(f"{title}: {len(ok)} variants (marker area: activation memory, "
                     f"{min(memory) / 1e6:.1f}-{max(memory) / 1e6:.1f} MB)" if ok else title,
                     fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()

"""Notebook output beyond the report's own table: :func:`show`, the graph page inline.

Jupyter, VS Code and Colab display an object through its ``_repr_html_``: a
:class:`~archspec.views.report.Report` shows the check table with folding blocks
(:func:`archspec.views.report.report_html`); :func:`show` returns a :class:`Shown`, whose HTML
is the report's title and totals and the page of ``archspec graph -o net.html`` in an
``<iframe srcdoc>``. The page is self-contained (its data and code inline, a
Content-Security-Policy forbidding any request), so it works offline and needs no notebook
extension; it reaches the frame as one attribute value, escaped quotes included.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from typing import Any

from archspec.lang import ir
from archspec.views.report import HTML_STYLE, Report, analyze, title_html, totals_html


@dataclass(frozen=True)
class Shown:
    """What :func:`show` returns: the report's totals and the network's graph page, shown
    inline by a notebook (``_repr_html_``)."""

    report: Report
    page: str
    height: int = 640

    def __repr__(self) -> str:
        return repr(self.report)

    def _repr_html_(self) -> str:
        title = html.escape(f"{self.report.network}: the network's graph")
        frame = (f'<iframe class="archspec-graph" title="{title}" sandbox="allow-scripts" '
                 f'style="width:100%;height:{int(self.height)}px;border:1px solid #d0d7de;'
                 f'border-radius:6px" srcdoc="{html.escape(self.page, quote=True)}"></iframe>')
        return "\n".join(['<div class="archspec-report">', HTML_STYLE,
                          title_html(self.report), totals_html(self.report), frame, "</div>"])


def show(spec: ir.Spec | str | os.PathLike[str], depth: int = 1, batch: int = 1,
         height: int = 640, **options: Any) -> Shown:
    """``spec`` (a Spec, or a path that :func:`archspec.load` reads) for a notebook: its totals
    at ``batch`` and its graph page (counts for batch 1), blocks open to ``depth`` levels,
    ``height`` pixels tall. ``options`` are :func:`archspec.analyze`'s (dtype, convention)."""
    from archspec.lang.expander import expand
    from archspec.lang.syntax.loader import load
    from archspec.views.html import page

    if not isinstance(spec, ir.Spec):
        spec = load(spec)
    graph = expand(spec)
    per_sample = analyze(spec, batch=1, graph=graph, **options)
    report = per_sample if batch == 1 else analyze(spec, batch=batch, graph=graph, **options)
    return Shown(report=report, page=page(graph, per_sample, depth), height=height)

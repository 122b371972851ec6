"""The public report: an :class:`~archspec.analysis.report.Analysis` that renders itself as the
table of ``archspec check`` (``print(report)``), as Markdown, and (in the analysis) as JSON."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from archspec.analysis.report import Analysis
from archspec.analysis.report import analyze as analyze_numbers
from archspec.lang import ir


class Report(Analysis):
    """Everything ``archspec check`` prints; ``print(report)`` prints the table.

    ``to_dict()`` is the documented JSON contract. With ``symbolic_batch`` the batch is the
    name ``N`` in shapes (counts are for N=1)."""

    @classmethod
    def of(cls, analysis: Analysis) -> Report:
        """The same numbers as ``analysis``, with the renderings."""
        return cls(**{f.name: getattr(analysis, f.name) for f in fields(analysis)})

    def __str__(self) -> str:
        return self.to_table()

    def to_table(self, depth: int | None = 3) -> str:
        """The terminal table of ``archspec check``, blocks folded below ``depth`` levels
        (``None``: every layer; 0: the network as one row)."""
        from archspec.views.table import table

        return table(self, depth)

    def to_markdown(self, depth: int | None = 3) -> str:
        """The same rows as a GitHub-flavoured Markdown table, then the totals."""
        from archspec.views.table import markdown

        return markdown(self, depth)


def analyze(spec: ir.Spec, batch: int | None = 1, **options: Any) -> Report:
    """:func:`archspec.analysis.report.analyze` (same arguments), as a renderable Report."""
    return Report.of(analyze_numbers(spec, batch=batch, **options))

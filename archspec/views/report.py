"""The public report: an :class:`~archspec.analysis.report.Analysis` that renders itself as the
table of ``archspec check`` (``print(report)``), as Markdown, as HTML in a notebook
(``_repr_html_``) and (in the analysis) as JSON.

The HTML is the check table with its blocks folded, each a ``<details>`` element (closed: the
top level shows first) holding its contents, then the totals. No script runs: folding is the
browser's own. Every text from the spec (names, ops, shapes) is HTML-escaped, quotes
included, once, in :func:`_cell`, :func:`title_html` and :func:`totals_html`.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from archspec.analysis.budget import memory_warning
from archspec.analysis.report import Analysis, Row, visible_rows
from archspec.analysis.report import analyze as analyze_numbers
from archspec.lang import ir
from archspec.lang.expander import expand
from archspec.views.table import connections, is_dag, title_line, totals_lines


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

    def _repr_html_(self) -> str:
        """What a notebook shows: :func:`report_html`."""
        return report_html(self)


# Column heads and their relative widths: the nested tables of open blocks and the summaries
# of folded ones share them, so that their columns line up.
_COLUMNS = (("Layer", 24), ("Op", 12), ("Output shape", 15), ("Params", 11), ("MACs", 13),
            ("FLOPs", 13), ("RF/stride", 8))
_CONNECTED = ("Connected to", 16)
_NUMERIC = frozenset({"Params", "MACs", "FLOPs", "RF/stride"})

# The table's look, scoped to its own class so that a notebook's styles and its own stay apart.
HTML_STYLE = """<style>
.archspec-report { font: 12px/1.4 system-ui, sans-serif; color: #1f2328; max-width: 100%; }
.archspec-report .archspec-title { font-weight: 600; margin: 0 0 4px; }
.archspec-report table { width: 100%; table-layout: fixed; border-collapse: collapse;
  margin: 0; font-variant-numeric: tabular-nums; }
.archspec-report th, .archspec-report td, .archspec-report summary > span {
  padding: 2px 6px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  text-align: left; border: 0; }
.archspec-report th { border-bottom: 1px solid #d0d7de; background: #f6f8fa; }
.archspec-report tr { border-bottom: 1px solid #eaeef2; background: none; }
.archspec-report .num { text-align: right; }
.archspec-report td.block { padding: 0; }
.archspec-report summary { display: grid; cursor: pointer; list-style: none;
  background: #ddf4ff; }
.archspec-report summary::-webkit-details-marker { display: none; }
.archspec-report summary > span:first-child::before { content: "\\25b8  "; }
.archspec-report details[open] > summary > span:first-child::before { content: "\\25be  "; }
.archspec-report ul { margin: 6px 0 0; padding-left: 18px; }
</style>"""


def _columns(dag: bool) -> tuple[tuple[str, int], ...]:
    return (*_COLUMNS, _CONNECTED) if dag else _COLUMNS


def _widths(dag: bool) -> list[str]:
    """Each column's share of the table's width, as CSS percentages."""
    cols = _columns(dag)
    total = sum(w for _, w in cols)
    return [f"{100 * w / total:.2f}%" for _, w in cols]


def _cells(report: Analysis, row: Row, links: dict[str, str], dag: bool) -> list[str]:
    """One row's column texts, as the terminal table writes them (not yet escaped);
    ``links``: the "Connected to" text per row name."""
    rf = "" if row.receptive_field is None else f"{row.receptive_field}/{row.stride}"
    shape = "[" + ", ".join(map(str, report.shape(row.output_shape))) + "]"
    cells = [row.name.rsplit(".", 1)[-1], row.op, shape,
             *(f"{n:,}" if n else "-" for n in (row.params, row.macs, row.flops)), rf]
    return [*cells, links.get(row.name, "")] if dag else cells


def _cell(tag: str, text: str, head: str, indent: int, full: str) -> str:
    """One escaped cell; the layer cell is indented by its depth and titled with its full
    dotted name."""
    attrs = ' class="num"' if head in _NUMERIC else ""
    if head == "Layer":
        attrs = f' title="{html.escape(full)}" style="padding-left:{0.5 + 1.2 * indent:.1f}em"'
    return f"<{tag}{attrs}>{html.escape(text)}</{tag}>"


@dataclass
class _Node:
    """A visible row and, for a block, the rows inside it."""

    row: Row
    children: list[_Node]


def _nest(rows: list[Row]) -> list[_Node]:
    """The rows (blocks before their contents) as a tree of blocks."""
    top: list[_Node] = []
    stack: list[_Node] = []
    for row in rows:
        while stack and not row.name.startswith(stack[-1].row.name + "."):
            stack.pop()
        node = _Node(row, [])
        (stack[-1].children if stack else top).append(node)
        if row.kind == "block":
            stack.append(node)
    return top


class _Writer:
    """The table's HTML: a ``<tr>`` per layer, a ``<details>`` per block."""

    def __init__(self, report: Analysis) -> None:
        self.report = report
        self.dag = is_dag(report)
        self.tree = _nest(list(visible_rows(report, None)))
        self.heads = [h for h, _ in _columns(self.dag)]
        self.widths = _widths(self.dag)
        self._links: dict[int, dict[str, str]] = {}

    def links(self, depth: int) -> dict[str, str]:
        """"Connected to" for the rows at ``depth``, named as the table at ``depth + 1``
        levels names them: a row reading a layer inside a folded sibling block names the
        block, as ``check --depth`` does."""
        if not self.dag:
            return {}
        if depth not in self._links:
            self._links[depth] = connections(list(visible_rows(self.report, depth + 1)))
        return self._links[depth]

    def table(self, nodes: list[_Node], head: bool) -> Iterator[str]:
        yield "<table>"
        yield "<colgroup>" + "".join(f'<col style="width:{w}">' for w in self.widths) + \
              "</colgroup>"
        if head:
            yield "<thead><tr>" + "".join(_cell("th", h, h, 0, h) for h in self.heads) + \
                  "</tr></thead>"
        yield "<tbody>"
        for node in nodes:
            yield from self.node(node)
        yield "</tbody></table>"

    def node(self, node: _Node) -> Iterator[str]:
        row = node.row
        cells = _cells(self.report, row, self.links(row.depth), self.dag)
        if row.kind != "block":
            yield "<tr>" + "".join(_cell("td", c, h, row.depth, row.name)
                                   for c, h in zip(cells, self.heads)) + "</tr>"
            return
        grid = " ".join(self.widths)
        yield (f'<tr><td class="block" colspan="{len(self.heads)}"><details>'
               f'<summary style="grid-template-columns:{grid}">'
               + "".join(_cell("span", c, h, row.depth, row.name)
                         for c, h in zip(cells, self.heads)) + "</summary>")
        yield from self.table(node.children, head=False)
        yield "</details></td></tr>"


def title_html(report: Analysis) -> str:
    """The title line of ``archspec check`` (network, inputs, batch, dtype), escaped."""
    return f'<p class="archspec-title">{html.escape(title_line(report))}</p>'


def totals_html(report: Analysis) -> str:
    """The totals of ``archspec check`` as an escaped list."""
    return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in totals_lines(report)) + \
        "</ul>"


def report_html(report: Analysis) -> str:
    """The check table as HTML: the title, every row (blocks folded: a click opens one),
    then the totals."""
    writer = _Writer(report)
    return "\n".join(['<div class="archspec-report">', HTML_STYLE, title_html(report),
                      *writer.table(writer.tree, head=True), totals_html(report), "</div>"])


def analyze(spec: ir.Spec, batch: int | None = 1, **options: Any) -> Report:
    """:func:`archspec.analysis.report.analyze` (same arguments), as a renderable Report, with
    the W501 warning of a network too big for most machines
    (:func:`archspec.analysis.budget.memory_warning`)."""
    graph = options.pop("graph", None) or expand(spec)
    numbers = analyze_numbers(spec, batch=batch, graph=graph, **options)
    warning = memory_warning(graph, numbers)
    if warning is not None:
        numbers.warnings.append(warning)
    return Report.of(numbers)

"""Text renderings of an Analysis: an indented table for terminals and a Markdown table.

Names (network, inputs, layers, ops) are escaped for where they land: in the terminal table
everything a terminal acts on is shown escaped (:func:`printable`); in Markdown, layer and op
names are code spans (:func:`code_span`) and other names plain text with Markdown's
punctuation escaped (:func:`md_text`), so that no name opens a link, adds a cell or a line.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from archspec.analysis.budget import needed_bytes
from archspec.analysis.conventions import CONVENTIONS
from archspec.analysis.report import Analysis, Row, visible_rows
from archspec.lang.diagnostics import printable

_UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
# After a layer or output that only training-only outputs read (Row.train).
_TRAIN = " (train)"


def human(n: float, suffix: str = "") -> str:
    """``1_498_376_192`` -> ``1.50 G``; small numbers stay exact."""
    for scale, unit in _UNITS:
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}{suffix}"
    return f"{n:,.0f} {suffix}".rstrip()


def mb(n: int) -> str:
    return f"{n / 1e6:,.2f} MB"


def code_span(text: str) -> str:
    """``text`` as a Markdown code span that a table cell can hold: terminal escapes shown
    escaped, ``|`` as ``\\|`` (GFM splits cells at a bar even inside code), fenced with one
    backtick more than the longest run inside, padded with a space where it starts or ends
    with a backtick or a space (CommonMark drops one space each side)."""
    text = printable(text, " ").replace("|", "\\|")
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    if text[:1] in "` " or text[-1:] in "` ":
        text = f" {text} "
    return f"{fence}{text}{fence}"


_PLAIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*")


def op_cell(op: str) -> str:
    """An op name in a Markdown cell: a registry name (``conv2d``, ``group``) as it is, which
    Markdown cannot read as markup; any other name (a plugin's, the API's) as a code span."""
    return op if _PLAIN_NAME.fullmatch(op) else code_span(op)


_MD_SPECIAL = re.compile(r"[\\`*_{}\[\]<>()#+!|~&$]")


def md_text(text: str) -> str:
    """``text`` as plain Markdown text: terminal escapes shown escaped, every character that
    Markdown or a GFM table reads as markup backslash-escaped (plain names stay as they are,
    but for ``_``, escaped only where it could open emphasis)."""
    text = printable(text, " ")
    return _MD_SPECIAL.sub(lambda m: m.group() if m.group() == "_" and _inner(text, m.start())
                           else "\\" + m.group(), text)


def _inner(text: str, i: int) -> bool:
    """Whether the ``_`` at ``i`` sits between two letters or digits (GFM: no emphasis)."""
    return 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()


def _shape(report: Analysis, dims: list[int]) -> str:
    return "[" + ", ".join(map(str, report.shape(dims))) + "]"


def is_dag(report: Analysis) -> bool:
    """Whether the network is more than a chain: several inputs, or a layer that reads
    anything but the layer before it."""
    previous = tuple(report.inputs)
    for layer in report.layers:
        if layer.inputs != previous or len(previous) != 1:
            return True
        previous = (layer.name,)
    return False


def connections(rows: list[Row]) -> dict[str, str]:
    """Per visible row, the visible rows (or graph inputs) it reads: an input folded into a
    block is named by that block, a sibling by its own name (``branch1``, not
    ``inception3a.branch1``)."""
    names = {r.name for r in rows}

    def shown(producer: str, row: str) -> str:
        parts = producer.split(".")
        name = next((".".join(parts[:k]) for k in range(len(parts), 0, -1)
                     if ".".join(parts[:k]) in names), producer)
        parent = row.rpartition(".")[0]
        return name.removeprefix(parent + ".") if parent else name

    return {r.name: ", ".join(dict.fromkeys(shown(i, r.name) for i in r.inputs))
            for r in rows}


def _rf(row: Row) -> str:
    if row.receptive_field is None:
        return ""
    return f"{row.receptive_field}/{row.stride}"


def table(report: Analysis, depth: int | None = 3) -> str:
    """The terminal table: tree of layers with shapes, params, MACs, FLOPs, RF, then totals;
    a DAG (not a chain) gets a "Connected to" column."""
    visible = list(visible_rows(report, depth))
    dag = is_dag(report)
    links = connections(visible)
    head = ("Layer", "Op", "Output shape", "Params", "MACs", "FLOPs", "RF/stride",
            *(("Connected to",) if dag else ()))
    rows = [head]
    for r in visible:
        name = "  " * r.depth + r.name.rsplit(".", 1)[-1] if r.depth else r.name
        rows.append((printable(name, " ") + _TRAIN * r.train, printable(r.op, " "),
                     _shape(report, r.output_shape),
                     f"{r.params:,}" if r.params else "-", f"{r.macs:,}" if r.macs else "-",
                     f"{r.flops:,}" if r.flops else "-", _rf(r),
                     *((printable(links[r.name], " "),) if dag else ())))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    lines = [title_line(report, _plain), rule]
    for i, row in enumerate(rows):
        cells = [c.ljust(w) if j < 3 or j > 6 else c.rjust(w)
                 for j, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append(rule)
    lines += [rule, *totals_lines(report, _plain), rule]
    return "\n".join(lines)


def _plain(text: str) -> str:
    return printable(text, " ")


def title_line(report: Analysis, name: Callable[[str], str] = _plain) -> str:
    """The network, its inputs, batch and dtype; names through ``name`` (an escape)."""
    ins = ", ".join(f"{name(k)}: {_shape(report, v)}" for k, v in report.inputs.items())
    batch = "batch N (counts for N=1)" if report.symbolic_batch else f"batch {report.batch}"
    return f"{name(report.network)}  ({ins}; {batch}; {report.dtype})"


def totals_lines(report: Analysis, name: Callable[[str], str] = _plain) -> list[str]:
    t = report.totals
    outs = ", ".join(f"{name(k)}: {_shape(report, v)}" + _TRAIN * (k in report.train_outputs)
                     for k, v in report.outputs.items())
    return [
        f"Total params: {t['params']:,} ({human(t['params'])})",
        f"Trainable params: {t['trainable_params']:,}",
        f"Non-trainable params: {t['non_trainable_params']:,}",
        f"Buffers: {t['buffers']:,}",
        f"MACs: {t['macs']:,} ({human(t['macs'])}MACs) [{report.convention}: "
        f"{CONVENTIONS[report.convention].doc}]",
        f"FLOPs: {t['flops']:,} ({human(t['flops'])}FLOPs) [archspec full count]",
        f"Activation memory: {mb(t['activation_bytes'])} (sum of layer outputs), "
        f"peak {mb(t['peak_activation_bytes'])} (inference, freeing dead tensors)",
        f"Params size: {mb(t['param_bytes'])}; buffers size: {mb(t['buffer_bytes'])}; input "
        f"size: {mb(t['input_bytes'])}; torchinfo "
        f"forward/backward pass size: {mb(t['torchinfo_forward_backward_bytes'])}; fvcore "
        f"activations: {t['fvcore_activations']:,}",
        f"Estimated total size: {mb(t['estimated_total_bytes'])} (input + params + torchinfo "
        "forward/backward pass size, as torchinfo defines it)",
        f"Memory to run: {mb(needed_bytes(report))} (input + params + buffers + peak "
        "activations; what export, bench and eval check before they allocate)",
        *([f"Attention scores: {mb(t['attention_bytes'])} over all attention layers "
           "(batch x heads x queries x keys each; the peak counts each layer's while it runs)"]
          if t["attention_bytes"] else []),
        *_train_lines(report),
        f"Layers: {t['layers']}; outputs: {outs}",
    ]


def _train_lines(report: Analysis) -> list[str]:
    """What the training-only layers (marked ``(train)``) add, which the totals leave out."""
    train = [r for r in report.layers if r.train]
    if not train:
        return []
    macs = sum(r.macs for r in train)
    return [f"Training-only (train): {len(train)} layers, {macs:,} ({human(macs)}MACs); the "
            "totals above count the eval forward, which does not run them (their params are "
            "in the params)"]


def markdown(report: Analysis, depth: int | None = 3) -> str:
    """A GitHub-flavoured Markdown table of the same rows, then the totals as a list."""
    visible = list(visible_rows(report, depth))
    dag = is_dag(report)
    links = connections(visible)
    lines = [f"## {title_line(report, md_text)}", "",
             "| Layer | Op | Output shape | Params | MACs | FLOPs |" + (" Connected to |" * dag),
             "|---|---|---|--:|--:|--:|" + ("---|" * dag)]
    for r in visible:
        link = f" {_md_links(links[r.name])} |" if dag else ""
        lines.append(f"| {code_span(r.name)}{_TRAIN * r.train} | {op_cell(r.op)} "
                     f"| {_shape(report, r.output_shape)} "
                     f"| {r.params:,} | {r.macs:,} | {r.flops:,} |{link}")
    lines.append("")
    lines += [f"- {line}" for line in totals_lines(report, md_text)]
    return "\n".join(lines)


def _md_links(names: str) -> str:
    """A "Connected to" cell: each name a code span (they were joined with ", ")."""
    return ", ".join(code_span(n) for n in names.split(", ")) if names else ""

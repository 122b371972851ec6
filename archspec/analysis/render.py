"""Text renderings of a Report: an indented table for terminals and a Markdown table."""

from __future__ import annotations

from collections.abc import Iterator

from archspec.analysis.conventions import CONVENTIONS
from archspec.analysis.report import Report, Row

_UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def human(n: float, suffix: str = "") -> str:
    """``1_498_376_192`` -> ``1.50 G``; small numbers stay exact."""
    for scale, unit in _UNITS:
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}{suffix}"
    return f"{n:,.0f} {suffix}".rstrip()


def mb(n: int) -> str:
    return f"{n / 1e6:,.2f} MB"


def visible_rows(report: Report, depth: int | None) -> Iterator[Row]:
    """Layer and block rows in source order, blocks before their contents, to ``depth`` levels.

    A block at the last visible level is shown as one subtotal row.
    """
    blocks = {b.name: b for b in report.blocks}
    shown: set[str] = set()
    for layer in report.layers:
        parts = layer.name.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix in blocks and prefix not in shown and (depth is None or i - 1 < depth):
                shown.add(prefix)
                yield blocks[prefix]
        if depth is None or layer.depth < depth:
            yield layer


def _shape(row_shape: list[int], symbolic: bool) -> str:
    dims = ["N" if symbolic else str(row_shape[0]), *map(str, row_shape[1:])]
    return "[" + ", ".join(dims) + "]"


def _rf(row: Row) -> str:
    if row.receptive_field is None:
        return ""
    return f"{row.receptive_field}/{row.stride}"


def table(report: Report, depth: int | None = 3) -> str:
    """The terminal table: tree of layers with shapes, params, MACs, FLOPs, RF, then totals."""
    head = ("Layer", "Op", "Output shape", "Params", "MACs", "FLOPs", "RF/stride")
    rows = [head]
    for r in visible_rows(report, depth):
        name = "  " * r.depth + r.name.rsplit(".", 1)[-1] if r.depth else r.name
        rows.append((name, r.op, _shape(r.output_shape, report.symbolic_batch),
                     f"{r.params:,}" if r.params else "-", f"{r.macs:,}" if r.macs else "-",
                     f"{r.flops:,}" if r.flops else "-", _rf(r)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    lines = [_title(report), rule]
    for i, row in enumerate(rows):
        cells = [c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append(rule)
    lines += [rule, *_totals(report), rule]
    return "\n".join(lines)


def _title(report: Report) -> str:
    ins = ", ".join(f"{k}: {_shape(v, report.symbolic_batch)}" for k, v in report.inputs.items())
    batch = "batch N (counts for N=1)" if report.symbolic_batch else f"batch {report.batch}"
    return f"{report.network}  ({ins}; {batch}; {report.dtype})"


def _totals(report: Report) -> list[str]:
    t = report.totals
    outs = ", ".join(f"{k}: {_shape(v, report.symbolic_batch)}" for k, v in
                     report.outputs.items())
    return [
        f"Total params: {t['params']:,} ({human(t['params'])})",
        f"Trainable params: {t['trainable_params']:,}",
        f"Buffers: {t['buffers']:,}",
        f"MACs: {t['macs']:,} ({human(t['macs'])}MACs) [{report.convention}: "
        f"{CONVENTIONS[report.convention].doc}]",
        f"FLOPs: {t['flops']:,} ({human(t['flops'])}FLOPs) [archspec full count]",
        f"Activation memory: {mb(t['activation_bytes'])} (sum of layer outputs), "
        f"peak {mb(t['peak_activation_bytes'])} (inference, freeing dead tensors)",
        f"Params size: {mb(t['param_bytes'])}; input size: {mb(t['input_bytes'])}; torchinfo "
        f"forward/backward pass size: {mb(t['torchinfo_forward_backward_bytes'])}; fvcore "
        f"activations: {t['fvcore_activations']:,}",
        *([f"Attention scores: {mb(t['attention_bytes'])} over all attention layers "
           "(batch x heads x queries x keys each; the peak counts each layer's while it runs)"]
          if t["attention_bytes"] else []),
        f"Layers: {t['layers']}; outputs: {outs}",
    ]


def markdown(report: Report, depth: int | None = 3) -> str:
    """A GitHub-flavoured Markdown table of the same rows, then the totals as a list."""
    lines = [f"## {_title(report)}", "",
             "| Layer | Op | Output shape | Params | MACs | FLOPs |", "|---|---|---|--:|--:|--:|"]
    for r in visible_rows(report, depth):
        lines.append(f"| `{r.name}` | {r.op} | {_shape(r.output_shape, report.symbolic_batch)} "
                     f"| {r.params:,} | {r.macs:,} | {r.flops:,} |")
    lines.append("")
    lines += [f"- {line}" for line in _totals(report)]
    return "\n".join(lines)

"""The memory a network needs to run, from its analysis, checked before anything is allocated:
``export``, ``bench``, ``train`` and ``eval`` refuse a network that cannot fit (E709) instead of
failing in the allocator or driving the machine into the out-of-memory killer.

All figures are bytes at the analysis's batch and dtype. Inference holds the input, the
parameters, the buffers and the peak of live activations; training holds the parameters four
times (weights, gradients, Adam's two moments) and every activation (kept for backward).
"""

from __future__ import annotations

from archspec.analysis.report import Analysis, Row
from archspec.lang.diagnostics import Diagnostic, error
from archspec.lang.network import Graph
from archspec.lang.source import NOWHERE, Span

MEMORY_WARN = 32 * 2**30
"""Above this many bytes (32 GiB) for inference, ``check`` warns (W501): more than most
machines hold."""


def needed_bytes(analysis: Analysis, training: bool = False) -> int:
    """Bytes a forward (``training``: a training step) holds at the analysis's batch."""
    t = analysis.totals
    if training:
        return (t["input_bytes"] + 4 * t["param_bytes"] + t["buffer_bytes"]
                + t["activation_bytes"] + t["attention_bytes"])
    return t["input_bytes"] + t["param_bytes"] + t["buffer_bytes"] + t["peak_activation_bytes"]


def biggest(analysis: Analysis, count: int = 3) -> list[Row]:
    """The ``count`` layers that hold the most bytes (weights, buffers and output)."""
    width = analysis.totals["param_bytes"] // max(analysis.totals["params"], 1) or 4
    return sorted(analysis.layers, key=lambda r: -((r.params + r.buffers) * width
                                                   + r.activation_bytes))[:count]


def _span(graph: Graph, row: Row) -> Span:
    return graph.nodes[row.name].span if row.name in graph.nodes else NOWHERE


def _size(n: int) -> str:
    return f"{n / 2**30:,.2f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def memory_warning(graph: Graph, analysis: Analysis) -> Diagnostic | None:
    """W501 at the biggest layer when a forward needs more than :data:`MEMORY_WARN`."""
    need = needed_bytes(analysis)
    if need <= MEMORY_WARN or not analysis.layers:
        return None
    top = biggest(analysis)
    return Diagnostic("W501", f"a forward at batch {analysis.batch} needs {_size(need)} "
                      f"(more than {_size(MEMORY_WARN)}); the biggest layer is `{top[0].name}`",
                      _span(graph, top[0]), hint="check the input size, the batch and this "
                      "layer's sizes", severity="warning")


def check_budget(graph: Graph, analysis: Analysis, limit: int, what: str,
                 training: bool = False) -> None:
    """Raise E709 at the biggest layer when running needs more than ``limit`` bytes
    (``what`` says where the limit comes from: ``--max-memory``, the available memory)."""
    need = needed_bytes(analysis, training)
    if need <= limit:
        return
    top = biggest(analysis)
    notes = tuple((f"`{r.name}` ({r.op}): {(r.params + r.buffers):,} weights, output "
                   f"{_size(r.activation_bytes)}", _span(graph, r)) for r in top[1:])
    t = analysis.totals
    raise error("E709", f"{'training' if training else 'running'} at batch {analysis.batch} "
                f"needs {_size(need)} (parameters {_size(t['param_bytes'])}, buffers "
                f"{_size(t['buffer_bytes'])}, activations {_size(t['peak_activation_bytes'])}"
                f" at their peak); {what} is {_size(limit)}",
                _span(graph, top[0]) if top else NOWHERE,
                hint="a smaller batch or input, or --max-memory if the estimate is too cautious;"
                     f" the biggest layer is `{top[0].name if top else '?'}`", notes=notes)


def available_bytes() -> int | None:
    """The memory the system can give (``MemAvailable`` of /proc/meminfo), None where it is
    not known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None

"""The memory a network needs to run, from its analysis, checked before anything is allocated:
``export``, ``bench``, ``train`` and ``eval`` refuse a network that cannot fit (E709) instead of
failing in the allocator or driving the machine into the out-of-memory killer.

All figures are bytes at the analysis's batch and dtype, for one of three kinds of run
(:data:`Run`): ``weights`` (``export``: the parameters and buffers, no forward), ``forward``
(inference: the input, the weights and the peak of live activations) and ``training`` (the
parameters four times: weights, gradients, Adam's two moments; and every activation, kept for
backward).
"""

from __future__ import annotations

from typing import Literal

from archspec.analysis.report import Analysis, Row
from archspec.lang.diagnostics import Diagnostic, error
from archspec.lang.network import Graph
from archspec.lang.source import NOWHERE, Span

MEMORY_WARN = 32 * 2**30
"""Above this many bytes (32 GiB) for inference, ``check`` warns (W501): more than most
machines hold."""


Run = Literal["weights", "forward", "training"]


def needed_bytes(analysis: Analysis, run: Run = "forward") -> int:
    """Bytes a ``run`` holds at the analysis's batch (see the module docstring)."""
    t = analysis.totals
    weights = t["param_bytes"] + t["buffer_bytes"]
    if run == "weights":
        return weights
    if run == "training":
        return (t["input_bytes"] + weights + 3 * t["param_bytes"] + t["activation_bytes"]
                + t["attention_bytes"])
    return t["input_bytes"] + weights + t["peak_activation_bytes"]


def biggest(analysis: Analysis, count: int = 3, run: Run = "forward") -> list[Row]:
    """The ``count`` layers that hold the most bytes in a ``run``: weights and buffers, and
    their output unless only the weights are held."""
    width = analysis.totals["param_bytes"] // max(analysis.totals["params"], 1) or 4
    outputs = 0 if run == "weights" else 1
    return sorted(analysis.layers, key=lambda r: -((r.params + r.buffers) * width
                                                   + outputs * r.activation_bytes))[:count]


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
                 run: Run = "forward") -> None:
    """Raise E709 at the biggest layer when a ``run`` needs more than ``limit`` bytes (``what``
    says where the limit comes from: ``--max-memory``, the available memory)."""
    need = needed_bytes(analysis, run)
    if need <= limit:
        return
    top = biggest(analysis, run=run)
    notes = tuple((f"`{r.name}` ({r.op}): {(r.params + r.buffers):,} weights, output "
                   f"{_size(r.activation_bytes)}", _span(graph, r)) for r in top[1:])
    t = analysis.totals
    doing = {"weights": "holding the weights", "forward": f"running at batch {analysis.batch}",
             "training": f"training at batch {analysis.batch}"}[run]
    held = "" if run == "weights" else \
        f", activations {_size(t['peak_activation_bytes'])} at their peak"
    raise error("E709", f"{doing} needs {_size(need)} (parameters {_size(t['param_bytes'])}, "
                f"buffers {_size(t['buffer_bytes'])}{held}); {what} is {_size(limit)}",
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

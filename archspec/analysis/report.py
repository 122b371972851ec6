"""The analysis report: per-layer rows, per-block subtotals, totals, and its three renderings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from archspec import ir
from archspec.analysis import passes
from archspec.analysis.conventions import CONVENTIONS
from archspec.diagnostics import Diagnostic
from archspec.expander import expand
from archspec.graph import Graph
from archspec.ops.base import Cost, numel

METRICS = ("params", "buffers", "macs", "flops", "activation_bytes")


@dataclass(frozen=True)
class Row:
    """One layer (``kind="op"``) or one block/group subtotal (``kind="block"``).

    ``output_shape`` includes the batch. Counts are for the whole batch; ``params`` and
    ``buffers`` are element counts; ``activation_bytes`` is the size of the output tensor(s).
    """

    name: str
    op: str
    kind: str
    depth: int
    output_shape: list[int]
    params: int
    buffers: int
    macs: int
    flops: int
    activation_bytes: int
    receptive_field: int | float | None = None
    stride: int | float | None = None
    line: int = 0


@dataclass
class Report:
    """Everything ``archspec check`` prints. ``to_dict()`` is the documented JSON contract."""

    network: str
    batch: int
    dtype: str
    convention: str
    inputs: dict[str, list[int]]
    outputs: dict[str, list[int]]
    layers: list[Row]
    blocks: list[Row]
    totals: dict[str, int]
    warnings: list[Diagnostic] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    symbolic_batch: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: network, inputs, outputs, totals, layers, blocks, warnings."""
        return {
            "network": self.network, "batch": self.batch, "dtype": self.dtype,
            "convention": {"name": self.convention,
                           "macs": CONVENTIONS[self.convention].doc},
            "params": self.params, "inputs": self.inputs, "outputs": self.outputs,
            "totals": self.totals,
            "layers": [dict(vars(r)) for r in self.layers],
            "blocks": [dict(vars(r)) for r in self.blocks],
            "warnings": [{"code": d.code, "message": d.message, "file": d.span.file,
                          "line": d.span.line, "col": d.span.col} for d in self.warnings],
        }

    def to_json(self) -> str:
        """Compact JSON (one line; pipe through ``python -m json.tool`` to read it)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


def analyze(spec: ir.Spec, batch: int = 1, dtype: str = "float32",
            convention: str = "torchvision", graph: Graph | None = None) -> Report:
    """Run every pass over ``spec`` (or an already expanded ``graph``) and build a Report."""
    if dtype not in passes.DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {sorted(passes.DTYPE_BYTES)}, got {dtype!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
    g = graph if graph is not None else expand(spec)
    layers = _layer_rows(g, batch, dtype, convention)
    blocks = _block_rows(g, layers)
    width = passes.DTYPE_BYTES[dtype]
    input_bytes = {k: numel(s) * batch * width for k, s in g.inputs.items()}
    totals = {m: sum(getattr(r, m) for r in layers) for m in METRICS}
    totals["trainable_params"] = totals["params"]
    totals["input_bytes"] = sum(input_bytes.values())
    totals["param_bytes"] = totals["params"] * width
    scratch = passes.scratch_bytes(g, passes.costs(g), batch, dtype)
    totals["attention_bytes"] = sum(scratch.values())
    totals["peak_activation_bytes"] = passes.peak_bytes(
        g, {r.name: r.activation_bytes for r in layers}, input_bytes, scratch)
    totals["layers"] = len(layers)
    totals.update(_other_tools_memory(layers))
    return Report(
        network=g.name, batch=batch, dtype=dtype, convention=convention,
        inputs={k: [batch, *s] for k, s in g.inputs.items()},
        outputs={k: [batch, *g.shape_of(v)] for k, v in g.outputs.items()},
        layers=layers, blocks=blocks, totals=totals, warnings=list(g.warnings),
        params=g.params)


def _other_tools_memory(layers: list[Row]) -> dict[str, int]:
    """Memory figures as other tools define them: torchinfo's "Forward/backward pass size"
    (2 x the bytes of every output of a layer with parameters) and fvcore's activation count
    (output elements of convolutions and linear layers)."""
    from archspec.ops import REGISTRY, Category

    with_params = sum(r.activation_bytes for r in layers if r.params)
    weighted = sum(numel(r.output_shape) for r in layers
                   if REGISTRY[r.op].category in (Category.WEIGHTED, Category.TRANSPOSED))
    return {"torchinfo_forward_backward_bytes": 2 * with_params,
            "fvcore_activations": weighted}


def _layer_rows(g: Graph, batch: int, dtype: str, convention: str) -> list[Row]:
    costs = passes.costs(g)
    macs = passes.convention_macs(g, costs, convention, batch)
    mem = passes.activation_bytes(g, batch, dtype)
    fields = passes.receptive_fields(g)
    return [Row(name=n.id, op=n.op, kind="op", depth=n.id.count("."),
                output_shape=[batch, *n.shape], params=costs[n.id].params,
                buffers=costs[n.id].buffers, macs=macs[n.id],
                flops=_flops(costs[n.id], batch), activation_bytes=mem[n.id],
                receptive_field=_number(fields[n.id].size),
                stride=_number(fields[n.id].stride), line=n.span.line) for n in g]


def _flops(cost: Cost, batch: int) -> int:
    """FLOPs at ``batch``: per sample times the batch, plus the per-forward work."""
    return cost.flops * batch + (cost.once.flops if cost.once is not None else 0)


def _number(value: Fraction | None) -> int | float | None:
    """An exact fraction as a JSON-friendly number: an int when whole."""
    if value is None:
        return None
    return int(value) if value.denominator == 1 else round(float(value), 4)


def _block_rows(g: Graph, layers: list[Row]) -> list[Row]:
    """Subtotals per scope (block call or labelled group), summed over the layers inside."""
    sums: dict[str, dict[str, int]] = {p: dict.fromkeys(METRICS, 0) for p in g.scopes}
    for row in layers:
        parts = row.name.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix in sums:
                for m in METRICS:
                    sums[prefix][m] += getattr(row, m)
    by_name = {r.name: r for r in layers}
    rows = []
    for path, scope in g.scopes.items():
        out = [layers[0].output_shape[0], *g.shape_of(scope.output)] if layers else []
        last = by_name.get(scope.output)
        rows.append(Row(name=path, op=scope.kind, kind="block", depth=path.count("."),
                        output_shape=out, line=scope.span.line, **sums[path],
                        receptive_field=last.receptive_field if last else None,
                        stride=last.stride if last else None))
    return rows

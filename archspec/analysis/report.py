"""The analysis of a network: per-layer rows, per-block subtotals and totals, with its JSON form.

The text and Markdown tables of the same numbers are views (archspec/views/report.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from archspec.analysis import passes
from archspec.analysis.conventions import CONVENTIONS
from archspec.lang import ir
from archspec.lang.collection import paused
from archspec.lang.diagnostics import Diagnostic, error
from archspec.lang.expander import expand
from archspec.lang.limits import MAX_ELEMENTS
from archspec.lang.network import Graph
from archspec.lang.source import NOWHERE
from archspec.ops.base import Cost, numel

METRICS = ("params", "buffers", "macs", "flops", "activation_bytes")


@dataclass(frozen=True)
class Row:
    """One layer (``kind="op"``), one block/group subtotal (``kind="block"``) or the whole
    network (``kind="network"``: the row at depth 0 and the root of the JSON tree).

    ``output_shape`` includes the batch. Counts are for the whole batch; ``params`` and
    ``buffers`` are element counts; ``activation_bytes`` is the size of the output tensor(s).
    ``inputs`` are the layers or graph inputs it reads (for a block, those from outside it);
    ``source`` is ``file:line:col`` of the statement that made it (maybe an imported file).
    ``train``: only training-only outputs read it (a block: every layer inside), so the eval
    forward does not run it: its params count in the totals, its MACs, FLOPs and activations
    do not.
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
    source: str = ""
    inputs: tuple[str, ...] = ()
    train: bool = False

    @classmethod
    def made(cls, fields: dict[str, Any]) -> Row:
        """A row from ``fields`` that the analysis computed, every field given with its type:
        set at once rather than one ``object.__setattr__`` per field, which is most of the
        cost of a frozen dataclass (thousands of rows per network)."""
        row = object.__new__(cls)
        row.__dict__.update(fields)
        return row


@dataclass(repr=False)
class Analysis:
    """Everything ``archspec check`` prints, as numbers (the tables are
    :class:`archspec.views.report.Report`, a subclass).

    ``to_dict()`` is the documented JSON contract. With ``symbolic_batch`` the batch is the
    name ``N`` in shapes (counts are for N=1). ``train_outputs`` are the names in ``outputs``
    returned in training mode only; the totals count the eval forward, without them."""

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
    train_outputs: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.network}: {self.totals['params']:,} params, "
                f"{self.totals['macs']:,} MACs ({self.convention})>")

    def shape(self, dims: list[int]) -> list[int | str]:
        """A shape with its batch dimension as the name ``N`` when the batch is symbolic."""
        return ["N" if self.symbolic_batch else dims[0], *dims[1:]] if dims else []

    def row_dict(self, row: Row) -> dict[str, Any]:
        """One row as JSON: its fields, the shape with a symbolic batch as ``N``."""
        return {**vars(row), "output_shape": self.shape(row.output_shape),
                "inputs": list(row.inputs)}

    def to_dict(self, depth: int | None = None) -> dict[str, Any]:
        """JSON-ready dict: network, inputs, outputs, totals, layers, blocks, the block
        ``tree`` and warnings. With ``depth``, ``layers``, ``blocks`` and ``tree`` hold only
        the rows shown at that depth (0: the network alone); totals are always whole."""
        rows = list(visible_rows(self, depth))
        return {
            "network": self.network, "batch": "N" if self.symbolic_batch else self.batch,
            "counts_for_batch": self.batch, "dtype": self.dtype,
            "convention": {"name": self.convention,
                           "macs": CONVENTIONS[self.convention].doc},
            "params": self.params, "depth": depth,
            "inputs": {k: self.shape(v) for k, v in self.inputs.items()},
            "outputs": {k: self.shape(v) for k, v in self.outputs.items()},
            "train_outputs": self.train_outputs, "totals": self.totals,
            "layers": [self.row_dict(r) for r in rows if r.kind == "op"],
            "blocks": [self.row_dict(r) for r in rows if r.kind == "block"],
            "tree": self._tree(rows),
            "warnings": [{"code": d.code, "message": d.message, "file": d.span.file,
                          "line": d.span.line, "col": d.span.col} for d in self.warnings],
        }

    def _tree(self, rows: list[Row]) -> dict[str, Any]:
        """The visible rows nested by block: the network row with ``children`` lists."""
        root = {**self.row_dict(self.network_row()), "children": []}
        if rows and rows[0].kind == "network":
            return root
        stack: list[tuple[str, dict[str, Any]]] = [("", root)]
        for row in rows:
            while stack[-1][0] and not row.name.startswith(stack[-1][0] + "."):
                stack.pop()
            node = {**self.row_dict(row), "children": []}
            stack[-1][1]["children"].append(node)
            if row.kind == "block":
                stack.append((row.name, node))
        return root

    def network_row(self) -> Row:
        """The whole network as one row: totals, the first output's shape."""
        t = self.totals
        return Row(name=self.network, op="network", kind="network", depth=0,
                   output_shape=next(iter(self.outputs.values()), []), params=t["params"],
                   buffers=t["buffers"], macs=t["macs"], flops=t["flops"],
                   activation_bytes=t["activation_bytes"], inputs=tuple(self.inputs))

    def to_json(self, depth: int | None = None) -> str:
        """Compact JSON of :meth:`to_dict` (one line; pipe through ``python -m json.tool``)."""
        return json.dumps(self.to_dict(depth), separators=(",", ":"))


def visible_rows(report: Analysis, depth: int | None) -> Iterator[Row]:
    """Layer and block rows in source order, blocks before their contents, to ``depth`` levels.

    A block at the last visible level is shown as one subtotal row; at depth 0 the network
    is one row.
    """
    if depth == 0:
        yield report.network_row()
        return
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


@paused()
def analyze(spec: ir.Spec, batch: int | None = 1, dtype: str = "float32",
            convention: str = "torchvision", graph: Graph | None = None) -> Analysis:
    """Run every pass over ``spec`` (or an already expanded ``graph``) and build its Analysis.

    ``batch=None`` is a symbolic batch ``N``: shapes show ``N``, counts are for N=1."""
    symbolic = batch is None
    batch = batch or 1
    if dtype not in passes.DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {sorted(passes.DTYPE_BYTES)}, got {dtype!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
    g = graph if graph is not None else expand(spec)
    node_costs = passes.costs(g)
    times = passes.batches(g, batch)
    skip = frozenset(g.train_only())
    layers = _layer_rows(g, node_costs, times, batch, dtype, convention, skip)
    blocks = _block_rows(g, layers)
    width = passes.DTYPE_BYTES[dtype]
    input_bytes = {k: numel(s) * batch * width for k, s in g.inputs.items()}
    totals = _sums(layers)
    frozen = _frozen_params(g, layers)
    totals["trainable_params"] = totals["params"] - frozen
    totals["non_trainable_params"] = frozen
    totals["input_bytes"] = sum(input_bytes.values())
    totals["param_bytes"] = totals["params"] * width
    totals["buffer_bytes"] = totals["buffers"] * width
    scratch = passes.scratch_bytes(g, node_costs, batch, dtype, times)
    totals["attention_bytes"] = sum(v for k, v in scratch.items() if k not in skip)
    totals["peak_activation_bytes"] = passes.peak_bytes(
        g, {r.name: r.activation_bytes for r in layers}, input_bytes, scratch, skip)
    totals["layers"] = len(layers)
    totals.update(_other_tools_memory([r for r in layers if not r.train]))
    totals["estimated_total_bytes"] = (totals["input_bytes"] + totals["param_bytes"]
                                       + totals["torchinfo_forward_backward_bytes"])
    _check_bounds(g, layers, totals)
    return Analysis(
        network=g.name, batch=batch, dtype=dtype, convention=convention,
        inputs={k: [batch, *s] for k, s in g.inputs.items()},
        outputs={k: [batch, *g.shape_of(v)] for k, v in g.outputs.items()},
        layers=layers, blocks=blocks, totals=totals, warnings=list(g.warnings),
        params=g.params, symbolic_batch=symbolic,
        train_outputs=[k for k in g.outputs if k in g.train_outputs])


def _check_bounds(g: Graph, layers: list[Row], totals: dict[str, int]) -> None:
    """Every total fits a signed 64-bit count (JSON readers, the backends): else E701 at the
    layer that contributes most to the first total that does not."""
    for metric, value in totals.items():
        if value > MAX_ELEMENTS:
            big = max(layers, key=lambda r: getattr(r, metric, 0) or 0, default=None)
            span = g.nodes[big.name].span if big is not None and big.name in g.nodes else NOWHERE
            raise error("E701", f"the network's {metric.replace('_', ' ')} ({value:.3g}) do "
                        f"not fit in 64 bits (at most {MAX_ELEMENTS:,})", span,
                        hint="a smaller input, batch or layer; this layer counts most")


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


def _sums(layers: list[Row]) -> dict[str, int]:
    """The :data:`METRICS` of ``layers``, each summed: params and buffers over every layer,
    the work and the activations over the eval forward's (not ``train``), as torchvision's
    ``num_params`` and ``_ops`` count them."""
    run = [r for r in layers if not r.train]
    return {"params": sum(r.params for r in layers), "buffers": sum(r.buffers for r in layers),
            "macs": sum(r.macs for r in run), "flops": sum(r.flops for r in run),
            "activation_bytes": sum(r.activation_bytes for r in run)}


def _frozen_params(g: Graph, layers: list[Row]) -> int:
    """Parameters of the layers whose attributes say ``frozen`` (not trained)."""
    kinds = {n.op: type(n.attrs) for n in g}
    with_flag = {op for op, model in kinds.items()
                 if "frozen" in model.model_fields or hasattr(model, "frozen")}
    if not with_flag:
        return 0
    return sum(r.params for r, n in zip(layers, g)
               if n.op in with_flag and getattr(n.attrs, "frozen", False))


def _layer_rows(g: Graph, costs: dict[str, Cost], times: dict[str, int], batch: int,
                dtype: str, convention: str, train: frozenset[str]) -> list[Row]:
    """One row per node; ``times``: each node's :func:`passes.batches` at ``batch``. FLOPs are
    the per-sample count times the node's batch, plus its per-forward work. ``train``: the
    training-only nodes (:meth:`Graph.train_only`)."""
    macs = passes.convention_macs(g, costs, convention, batch, times)
    mem = passes.activation_bytes(g, batch, dtype, times)
    fields = passes.receptive_fields(g)
    sources: dict[int, str] = {}  # by span: the layers of a block share their spans
    rows = []
    for n in g:
        cost, count, field_ = costs[n.id], times[n.id], fields[n.id]
        source = sources.get(id(n.span))
        if source is None:
            source = sources[id(n.span)] = str(n.span)
        rows.append(Row.made({
            "name": n.id, "op": n.op, "kind": "op", "depth": n.id.count("."),
            "output_shape": [count, *n.shape], "params": cost.params,
            "buffers": cost.buffers, "macs": macs[n.id],
            "flops": cost.flops * count + (cost.once.flops if cost.once is not None else 0),
            "activation_bytes": mem[n.id], "receptive_field": _number(field_.size),
            "stride": _number(field_.stride), "line": n.span.line, "source": source,
            "inputs": n.inputs, "train": n.id in train}))
    return rows


def _number(value: Fraction | None) -> int | float | None:
    """An exact fraction as a JSON-friendly number: an int when whole."""
    if value is None or type(value) is int:
        return value
    return int(value) if value.denominator == 1 else round(float(value), 4)


def _block_rows(g: Graph, layers: list[Row]) -> list[Row]:
    """Subtotals per scope (block call or labelled group), summed over the layers inside; a
    scope is ``train`` when every layer inside is."""
    sums: dict[str, list[int]] = {p: [0, 0, 0, 0, 0] for p in g.scopes}
    run: set[str] = set()  # the scopes with a layer that the eval forward runs
    entering: dict[str, dict[str, None]] = {p: {} for p in g.scopes}
    chains: dict[str, list[str]] = {}  # by a layer's parent path: the scopes it is inside
    own: dict[str, list[int]] = {}  # by parent path: the sums of the layers right inside it
    for row, n in zip(layers, g):
        parent = row.name.rpartition(".")[0]
        chain = chains.get(parent)
        if chain is None:
            chain = chains[parent] = _scopes_of(row.name, sums)
            own[parent] = [0, 0, 0, 0, 0]
        total = own[parent]
        total[0] += row.params
        total[1] += row.buffers
        total[2] += row.macs
        total[3] += row.flops
        total[4] += row.activation_bytes
        if not row.train:
            run.update(chain)
        beside = parent + "."  # a value under the parent is inside every scope of the chain
        for i in n.inputs:
            if not i.startswith(beside):
                for prefix in chain:
                    if not i.startswith(prefix + "."):
                        entering[prefix].setdefault(i)
    for parent, chain in chains.items():
        for prefix in chain:
            sums[prefix] = [a + b for a, b in zip(sums[prefix], own[parent])]
    by_name = {r.name: r for r in layers}
    rows = []
    for path, scope in g.scopes.items():
        out = [layers[0].output_shape[0], *g.shape_of(scope.output)] if layers else []
        last = by_name.get(scope.output)
        total = sums[path]
        rows.append(Row.made({
            "name": path, "op": scope.kind, "kind": "block", "depth": path.count("."),
            "output_shape": out, "params": total[0], "buffers": total[1], "macs": total[2],
            "flops": total[3], "activation_bytes": total[4],
            "receptive_field": last.receptive_field if last else None,
            "stride": last.stride if last else None, "line": scope.span.line,
            "source": str(scope.span), "inputs": tuple(entering[path]),
            "train": path not in run and last is not None and last.train}))
    return rows


def _scopes_of(name: str, scopes: dict[str, Any]) -> list[str]:
    """The dotted prefixes of layer ``name`` (``a``, ``a.b`` of ``a.b.c``) that are scopes,
    outermost first."""
    found = []
    dot = name.find(".")
    while dot != -1:
        prefix = name[:dot]
        if prefix in scopes:
            found.append(prefix)
        dot = name.find(".", dot + 1)
    return found

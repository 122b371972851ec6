"""The op registry: one :class:`OpDef` per layer kind holds everything about it.

Shapes here are *per sample*: a tuple of ints without the batch dimension, e.g. ``(64, 56, 56)``
for a 2-D feature map (channels, height, width). Costs are per sample too; the analysis multiplies
by the batch. MACs are multiply-accumulates of convolution/linear weights only (torchvision's
``_ops`` convention); FLOPs are archspec's full count (see docs/conventions.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

Shape = tuple[int, ...]
IntOrTuple = int | tuple[int, ...]  # an attribute given once for all spatial dims, or per dim


class Attrs(BaseModel):
    """Base of every op's attribute model: frozen, strict about unknown names."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class NoAttrs(Attrs):
    """For ops that take no attributes."""


class ShapeError(Exception):
    """Raised by shape rules; the expander turns it into a located diagnostic."""

    def __init__(self, message: str, hint: str | None = None, code: str = "E301") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code


@dataclass(frozen=True)
class Cost:
    """Static cost of one op, per sample.

    ``params``/``buffers``: element counts. ``macs``: weight multiply-accumulates.
    ``bias``: bias additions (output elements when the op has a bias). ``flops``: full count.
    ``in_numel``/``out_numel``: elements read / written, used by counting conventions.
    """

    params: int = 0
    buffers: int = 0
    macs: int = 0
    bias: int = 0
    flops: int = 0
    in_numel: int = 0
    out_numel: int = 0


@dataclass(frozen=True)
class Window:
    """Sliding-window geometry along the spatial dims, for receptive field and stride."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]


@dataclass(frozen=True)
class Ctx:
    """What a rule sees: input shapes (per sample), the output shape, and the attributes.

    ``inplace`` (torch rules only) says the op may overwrite its input: nothing else reads it
    and its producer neither returns a view nor keeps its output for backward.
    """

    inputs: tuple[Shape, ...]
    out: Shape
    attrs: Any
    inplace: bool = False

    @property
    def x(self) -> Shape:
        return self.inputs[0]


@dataclass(frozen=True)
class OpDef:
    """Everything archspec knows about one layer kind.

    ``category`` groups ops for third-party counting conventions: ``linear`` (conv, linear),
    ``norm``, ``act``, ``maxpool``, ``avgpool``, ``adaptive_avg``, ``adaptive_max``, ``merge``
    or ``other``.
    ``torch(ctx)`` returns the ``nn.Module`` that computes the op (torch is imported inside the
    rule, never at module import). ``torch_fn(ctx)`` instead returns ``(function, kwargs,
    as_list)`` for ops that are a plain function of their inputs (add, concat): the backend
    calls ``function([*inputs], **kwargs)`` when ``as_list``, else ``function(*inputs, **kwargs)``.
    ``onnx(ctx, b)`` emits the op's ONNX nodes through the builder ``b`` (backends/onnx.py).
    ``fresh_output`` and ``keeps_output`` decide when a consumer may work in place.
    """

    name: str
    attrs: type[Attrs]
    infer: Callable[[tuple[Shape, ...], Any], Shape]
    cost: Callable[[Ctx], Cost]
    doc: str
    positional: tuple[str, ...] = ()
    category: str = "other"
    inputs: tuple[int, int | None] = (1, 1)
    window: Callable[[Any], Window | None] = field(default=lambda attrs: None)
    warn: Callable[[tuple[Shape, ...], Any], list[str]] = field(default=lambda i, a: [])
    torch: Callable[[Ctx], Any] | None = None
    torch_fn: Callable[[Ctx], tuple[Callable[..., Any], dict[str, Any], bool]] | None = None
    onnx: Callable[..., Any] | None = None
    aliases: tuple[str, ...] = ()
    fresh_output: bool = True  # False when the output may alias the input (views, identity)
    keeps_output: bool = False  # True when backward needs the op's own output


REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add ``op`` (and its aliases) to the registry."""
    for name in (op.name, *op.aliases):
        if name in REGISTRY:
            raise ValueError(f"op {name!r} registered twice")
        REGISTRY[name] = op
    return op


def numel(shape: Shape) -> int:
    """Number of elements of a per-sample shape."""
    return math.prod(shape)


def elementwise_cost(flops_per_element: int) -> Callable[[Ctx], Cost]:
    """Cost rule for an op that maps each input element to one output element."""

    def cost(ctx: Ctx) -> Cost:
        n = numel(ctx.out)
        return Cost(flops=flops_per_element * n, in_numel=numel(ctx.x), out_numel=n)

    return cost


def same_shape(inputs: tuple[Shape, ...], attrs: Any) -> Shape:
    """Shape rule of element-wise ops: the output has the input's shape."""
    return inputs[0]


def fmt_shape(shape: Shape) -> str:
    """``(64, 56, 56)`` -> ``64x56x56``."""
    return "x".join(map(str, shape)) if shape else "scalar"


def tuple_of(value: int | tuple[int, ...], rank: int, name: str) -> tuple[int, ...]:
    """Broadcast an int attribute to ``rank`` spatial dims, or check a tuple's length."""
    if isinstance(value, int):
        return (value,) * rank
    if len(value) != rank:
        raise ShapeError(f"`{name}` (={value}) needs {rank} values, one per spatial dim",
                         hint=f"give one int or a tuple of {rank}")
    return tuple(value)

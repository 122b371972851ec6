"""The op registry: one :class:`OpDef` per layer kind holds everything about it.

Shapes here are *per sample*: a tuple of ints without the batch dimension, e.g. ``(64, 56, 56)``
for a 2-D feature map (channels, height, width). Costs are per sample too; the analysis multiplies
by the batch. MACs are multiply-accumulates of convolution/linear weights only (torchvision's
``_ops`` convention); FLOPs are archspec's full count (see docs/conventions.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

Shape = tuple[int, ...]
IntOrTuple = int | tuple[int, ...]  # an attribute given once for all spatial dims, or per dim

MAX_CHANNELS = 2**24
"""Largest channel or feature count (`out`) an op accepts, 16,777,216: far beyond any real
network, so that a slip such as ``conv2d(10**100, 3)`` is a located error, not a failed
allocation in `compile` or `export`."""


def takes_text(annotation: Any) -> bool:
    """Whether an attribute's type admits a string (``str``, a ``Literal`` of strings, a union
    with one, ``Any``): elsewhere a string is refused, not read as a number."""
    if annotation is str or annotation is Any:
        return True
    args = get_args(annotation)
    if get_origin(annotation) is Literal:
        return any(isinstance(a, str) for a in args)
    return get_origin(annotation) in (Union, UnionType) and any(takes_text(a) for a in args)


class Attrs(BaseModel):
    """Base of every op's attribute model: frozen, strict about unknown names; a number
    written as text (``mhsa("2")``) is refused rather than converted (pydantic's lax mode
    would read it as 2), while an int still fills a float. An op's validator is built when
    the op is first called (``defer_build``): a spec pays for the ops it uses."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, defer_build=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_text_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if isinstance(value, str) and value.lower() not in ("inf", "-inf") and \
                not takes_text(cls.model_fields[name].annotation) and \
                name not in cls._parsing_text():
            raise ValueError(f'`{name}` (="{value}") is text, where a value is expected; '
                             "write it without quotes")
        return value

    @classmethod
    def _parsing_text(cls) -> set[str]:
        """Fields with a ``before`` validator of their own, which reads text itself."""
        return {f for key, v in cls.__pydantic_decorators__.field_validators.items()
                if v.info.mode == "before" and key != "_no_text_for_numbers"
                for f in v.info.fields}


MAX_VALIDATED = 4096
"""How many validated attribute sets :func:`validated` keeps (it forgets them all past that)."""

_VALIDATED: dict[tuple[Any, ...], Attrs] = {}


def typed_key(value: Any) -> Any:
    """``value`` with the type of every part, so that values that compare equal but validate
    differently (``1``, ``1.0``, ``True``; ``0.0`` and ``-0.0``) have different keys."""
    kind = type(value)
    if kind is tuple or kind is list:
        return kind, tuple(map(typed_key, value))
    return kind, repr(value) if kind is float else value


def validated(model: type[Attrs], values: dict[str, Any]) -> Attrs:
    """``model.model_validate(values)``; the attributes are frozen, so the same values given
    again (a layer in a block called a thousand times) give the instance validated the first
    time. A value that cannot be a key (unhashable) is validated every time."""
    try:
        key = (model, *((name, typed_key(v)) for name, v in values.items()))
        found = _VALIDATED.get(key)
    except TypeError:
        return model.model_validate(values)
    if found is None:
        found = model.model_validate(values)
        if len(_VALIDATED) >= MAX_VALIDATED:
            _VALIDATED.clear()
        _VALIDATED[key] = found
    return found


def check_range(attrs: Attrs, names: tuple[str, ...], low: int, high: int | None = None) -> None:
    """Raise ``ValueError`` naming the first of ``names`` whose value (an int, or any int of a
    tuple) is below ``low`` or above ``high``. None and string values (``padding="same"``) pass.
    The attrs model's validator calls it, so the error is located at the layer's call."""
    for name in names:
        value = getattr(attrs, name)
        if value is None or isinstance(value, str):
            continue
        values = (value,) if isinstance(value, int) else value
        if any(v < low for v in values):
            bound = {0: "non-negative", 1: "positive"}.get(low, f"at least {low}")
            raise ValueError(f"`{name}` (={value}) must be {bound}")
        if high is not None and any(v > high for v in values):
            raise ValueError(f"`{name}` (={value}) must be at most {high:,}")


def check_positive_float(attrs: Attrs, *names: str) -> None:
    """Raise ``ValueError`` naming the first of ``names`` that is not a finite number > 0."""
    for name in names:
        value = getattr(attrs, name)
        if not 0 < value < math.inf:
            raise ValueError(f"`{name}` (={value}) must be a positive number")


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
    ``positions``: how many times the op's per-position computation runs, where a tool counts
    per position (transposed convolution: output spatial elements; softmax: rows; LRN: the
    zero-padded channel positions its window averages over; attention: logits; matmul: a's
    elements times b's columns, as tools that count a's rows count it; einsum: numpy's
    einsum_path FLOPs); else 0.
    ``products``: the part of ``macs`` that multiplies activations by activations (attention's
    ``QK^T`` and ``AV``), which some tools count apart from weight MACs; else 0.
    ``scratch``: elements of the intermediate tensors the op holds beyond its output while it
    runs, and keeps for backward (attention matrices: heads x queries x keys, per window for
    windowed attention); the memory pass counts them; else 0.
    ``category``: this call's counting category when it depends on the attributes (a resize
    counts by mode and rank); None means the op's own :attr:`OpDef.category`.
    ``parts``: for an op made of other ops' layers (Swin v2's block), their costs, each with
    its ``category``: the counting conventions count the parts, not the whole.
    ``once``: work the op does once per forward whatever the batch (Swin v2's position-bias
    MLP over the window's relative offsets), with its own ``category``; its ``params`` are
    already in the op's own. The analysis adds it once, not per sample.
    """

    params: int = 0
    buffers: int = 0
    macs: int = 0
    bias: int = 0
    flops: int = 0
    in_numel: int = 0
    out_numel: int = 0
    positions: int = 0
    products: int = 0
    scratch: int = 0
    category: Category | None = None
    parts: tuple[Cost, ...] = ()
    once: Cost | None = None


class Category(str, Enum):
    """What kind of computation an op is, for the counting conventions of other tools.

    Closed: every convention in analysis/conventions.py has a rule for every member (a test
    checks it), so a new op never inherits another op's count by accident. Add a member when
    some tool counts a new op differently from every existing one.
    """

    WEIGHTED = "weighted"  # convolution, linear: weight multiply-accumulates
    WEIGHTED_ND = "weighted_nd"  # linear over the last dim of an N-D input (tokens)
    ATTENTION = "attention"  # multi-head attention: projections and the QK^T, AV products
    LAYERNORM = "layernorm"  # nn.LayerNorm
    LAYERNORM2D = "layernorm2d"  # a LayerNorm subclass over map channels (tools match types)
    TRANSPOSED = "transposed"  # transposed convolution
    BATCHNORM = "batchnorm"
    GROUPNORM = "groupnorm"
    LRN = "lrn"
    RELU = "relu"
    LEAKY_RELU = "leaky_relu"
    RELU6 = "relu6"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    GELU = "gelu"
    SILU = "silu"
    SOFTMAX = "softmax"
    HARDSWISH = "hardswish"
    HARDSIGMOID = "hardsigmoid"
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"
    ADAPTIVE_AVG = "adaptive_avg"
    ADAPTIVE_MAX = "adaptive_max"
    ADD = "add"
    MUL = "mul"
    CONCAT = "concat"
    UPSAMPLE_NEAREST = "upsample_nearest"  # nearest resize of a 2-D map
    UPSAMPLE_LINEAR = "upsample_linear"  # bilinear resize of a 2-D map
    UPSAMPLE_OTHER = "upsample_other"  # any other resize: 1-D or 3-D, bicubic, nearest-exact
    REDUCE = "reduce"  # reductions over dims: mean, sum, amax, amin, var, std, norm, normalize
    MOVE = "move"  # data movement only: flatten, slice, crop, shuffle, dropout, identity
    WINDOW_ATTENTION = "window_attention"  # Swin's (shifted) window attention, v1
    COSINE_WINDOW_ATTENTION = "cosine_window_attention"  # Swin v2's, without its position MLP
    RELATIVE_ATTENTION = "relative_attention"  # MaxViT's attention within partitions
    POSITION_MLP = "position_mlp"  # Swin v2's linear-ReLU-linear position-bias MLP, per forward
    PATCH_MERGING = "patch_merging"  # Swin's 2x2 patch merging (LayerNorm + linear)
    # Tensor primitives: element-wise arithmetic (ops/arith.py) and more activations
    # (ops/activation.py); what each tool counts, measured in tests/test_op_conventions.py
    ARITHMETIC = "arithmetic"  # sub, div, maximum, minimum, scale, shift, pow, exp, log, ...
    MISH = "mish"
    ELU = "elu"
    SELU = "selu"
    SOFTPLUS = "softplus"
    HARDTANH = "hardtanh"
    QUICK_GELU = "quick_gelu"  # x * sigmoid(1.702 x), a helper module
    PRELU = "prelu"  # nn.PReLU: a learnable slope, one or one per channel
    # Products of activations (ops/linalg.py); the movement ops of ops/movement.py are MOVE.
    # Measured live in tests/test_op_conventions.py: only FlopCounterMode counts all three
    MATMUL = "matmul"  # torch.matmul; fvcore and ptflops count a's elements x b's columns
    EINSUM = "einsum"  # torch.einsum; fvcore counts numpy's einsum_path FLOPs, halved
    SDPA = "sdpa"  # F.scaled_dot_product_attention; no handle in fvcore, ptflops, thop
    # timm's ScaledStdConv2d (ops/conv.py), an nn.Conv2d subclass: tools that match module
    # types exactly (ptflops, thop) count none of it; fvcore counts the weight's standardisation
    SCALED_STD_CONV = "scaled_std_conv"  # the convolution itself, per sample
    WEIGHT_STANDARDISATION = "weight_standardisation"  # its weight standardised, per forward


ACTIVATIONS = frozenset({Category.RELU, Category.LEAKY_RELU, Category.RELU6, Category.SIGMOID,
                         Category.TANH, Category.GELU, Category.SILU, Category.HARDSWISH,
                         Category.HARDSIGMOID,
                         # tensor primitives' activations
                         Category.MISH, Category.ELU, Category.SELU, Category.SOFTPLUS,
                         Category.HARDTANH, Category.QUICK_GELU, Category.PRELU})
"""Element-wise activations: they keep their input's shape and layout."""


@dataclass(frozen=True)
class Step:
    """How an op changes the receptive field and the cumulative stride ("jump", in input
    pixels between neighbouring outputs) along the first spatial axis.

    The field grows by ``extra`` input-side jumps; the jump is multiplied by ``stride``
    (a fraction below 1 for upsampling). ``collapse`` means the op mixes every position
    (global pooling, flatten): the field is then global.
    """

    extra: Fraction | int = 0
    stride: Fraction | int = 1
    collapse: bool = False


POINTWISE = Step()
GLOBAL = Step(collapse=True)


def window_step(kernel: int, stride: int, dilation: int = 1) -> Step:
    """The step of a sliding window: the field grows by ``d*(k-1)`` jumps, the jump by ``s``."""
    return Step(extra=dilation * (kernel - 1), stride=stride)


@dataclass(frozen=True)
class Module:
    """Torch rule result: ``target(*args, **kwargs)`` builds an ``nn.Module`` that the forward
    calls on the op's inputs. ``target`` is a qualified name (``torch.nn.Conv2d``, or a class
    of ``archspec.backends.modules``, whose source an ejected file carries).

    Most modules take the inputs as they are. ``repeat`` passes them that many times, with the
    keyword arguments ``call``, and ``item`` picks one result of a tuple: self-attention is
    ``nn.MultiheadAttention`` called as ``attn(x, x, x, need_weights=False)[0]``.
    """

    target: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    repeat: int = 1
    call: tuple[tuple[str, Any], ...] = ()
    item: int | None = None

    @property
    def plain(self) -> bool:
        """Whether the forward calls the module on its inputs alone (``nn.Sequential`` can)."""
        return self.repeat == 1 and not self.call and self.item is None


@dataclass(frozen=True)
class Function:
    """Torch rule result: the forward applies ``target(*inputs, **kwargs)``, or
    ``target([inputs], **kwargs)`` when ``as_list`` (``torch.cat``). ``target`` is a qualified
    name: ``operator.add``, ``torch.cat``, ``torch.narrow``..."""

    target: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    as_list: bool = False


@dataclass(frozen=True)
class Learned:
    """Torch rule result of an op that owns one learnable tensor at its own path, so that the
    state_dict key is the layer's path itself (torchvision's ``class_token``,
    ``encoder.pos_embedding``, ``layer_scale``): ``factory`` describes the call that makes the
    ``nn.Parameter`` (a function of ``archspec.backends.modules``), and the forward applies
    ``combine(*inputs, parameter)``."""

    factory: Module
    combine: Function


TorchCall = Module | Function | Learned


def changed(defaults: dict[str, Any], **values: Any) -> dict[str, Any]:
    """The keyword arguments of ``values`` that differ from ``defaults`` (for tidy calls)."""
    return {k: v for k, v in values.items() if k not in defaults or defaults[k] != v}


def module(target: str, *args: Any, **kwargs: Any) -> Module:
    """``Module`` from a Python-style call: ``module("torch.nn.ReLU", inplace=True)``."""
    return Module(target, args, tuple(kwargs.items()))


def function(target: str, as_list: bool = False, **kwargs: Any) -> Function:
    """``Function`` from a Python-style call: ``function("torch.cat", True, dim=1)``."""
    return Function(target, tuple(kwargs.items()), as_list)


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

    Every rule is required, so that no op inherits a fact by default:

    - ``category``: how third-party counting conventions count it (:class:`Category`).
    - ``step(ctx)``: its effect on receptive field and cumulative stride (:class:`Step`).
    - ``torch(ctx)``: a :class:`Module` or :class:`Function` describing the PyTorch call; the
      fx backend builds it, ``archspec compile`` writes it as source. No torch import here.
    - ``onnx(ctx, b, inputs, output)``: emits the op's ONNX nodes through the builder ``b``
      (backends/onnx.py); ``min_opset`` is the lowest opset that rule supports.
    - ``outputs(inputs, attrs)``: for ops with several results (``a, b = chunk(2)(x)``), how
      many a call produces; the expander makes one node per result, passing ``index`` (0, 1,
      ...) as an attribute, so ``infer``/``torch``/``onnx`` describe result ``index`` alone.
      None (most ops): one result.

    ``fresh_output`` and ``keeps_output`` decide when a consumer may work in place.
    """

    name: str
    attrs: type[Attrs]
    infer: Callable[[tuple[Shape, ...], Any], Shape]
    cost: Callable[[Ctx], Cost]
    step: Callable[[Ctx], Step]
    category: Category
    torch: Callable[[Ctx], TorchCall]
    onnx: Callable[..., Any]
    doc: str
    positional: tuple[str, ...] = ()
    inputs: tuple[int, int | None] = (1, 1)
    min_opset: int = 13
    warn: Callable[[tuple[Shape, ...], Any], list[str]] = lambda i, a: []
    outputs: Callable[[tuple[Shape, ...], Any], int] | None = None
    aliases: tuple[str, ...] = ()
    fresh_output: bool = True  # False when the output may alias the input (views, identity)
    keeps_output: bool = False  # True when backward needs the op's own output
    constant_inputs: tuple[int, ...] = ()  # inputs that must be the same for every sample
    # (a `buffer` or what is computed from one): `take`'s index
    channels_first: bool = False  # its output is a (C, *spatial) map (convolution, pooling)
    features_last: bool = False  # it reads the last dim as features (linear): on a map straight
    # from a channels_first op that is likely a forgotten flatten (warning W302)


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

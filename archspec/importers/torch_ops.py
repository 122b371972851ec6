"""PyTorch modules and functions -> archspec ops, from the op registry.

A module is lifted data-driven: the candidate ops are those whose name is the module class's
(``Conv2d`` -> ``conv2d``, ``AdaptiveAvgPool2d`` -> ``adaptive_avgpool2d``), then every other
op; each candidate's attributes are read from the module's own attributes (``ATTR_SOURCES``
says where torch keeps each one), and a candidate is accepted only when its own torch rule
(``OpDef.torch``) builds a module equal to the source one: the same ``repr`` (all constructor
arguments) and the same state_dict keys and shapes. So a lifted op is exact or refused, never
approximated. Functions (``torch.flatten``, ``operator.add``) go through :data:`FUNCTIONS`,
one entry per function; per-sample dims are torch's dims minus the batch.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from archspec.backends.torch import build_module
from archspec.ops import REGISTRY, Ctx, Module

Shape = tuple[int, ...]

#: archspec attribute -> the torch module attributes that hold it, tried in order.
ATTR_SOURCES: dict[str, tuple[str, ...]] = {
    "out": ("out_channels", "out_features"), "kernel": ("kernel_size",), "ceil": ("ceil_mode",),
    "output": ("output_size",), "start": ("start_dim",), "end": ("end_dim",),
    "heads": ("num_heads",), "groups": ("groups", "num_groups"), "min_val": ("min_val",),
    "window": ("window_size",), "shift": ("shift_size",), "qkv_bias": ("qkv.bias",),
    "proj_bias": ("proj.bias",), "eps": ("eps", "norm.eps"),
}
#: module classes whose archspec op has another name (tried first, as a named op is)
CLASS_OPS: dict[str, str] = {"RelativePositionalMultiHeadAttention": "relative_attention"}
#: attributes that are per-sample dims: torch's value less one (the batch) when not negative
DIM_ATTRS = frozenset({"start", "end", "dim"})


def _plain(value: Any) -> Any:
    """A torch attribute as a spec value: tuples of one repeated int become that int."""
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, tuple) and value and all(v == value[0] for v in value) and \
            isinstance(value[0], int) and not isinstance(value[0], bool):
        return value[0]
    return value


def _read(module: nn.Module, field: str) -> Any:
    """The value of archspec attribute ``field`` in ``module``; KeyError when it has none.
    A dotted source (``qkv.bias``) is read in that submodule."""
    for source in (*ATTR_SOURCES.get(field, ()), field):
        owner, _, name = source.rpartition(".")
        if owner:
            sub = module._modules.get(owner)
            if sub is None:
                continue
            return _read(sub, name)
        if name in module._parameters or name in module._buffers:
            return module._parameters.get(name, module._buffers.get(name)) is not None
        if hasattr(module, name) and not callable(getattr(module, name)):
            value = getattr(module, name)
            if field in DIM_ATTRS and isinstance(value, int) and value > 0:
                value -= 1
            return _plain(value)
    raise KeyError(field)


def _signature(module: nn.Module) -> tuple[str, dict[str, Any], dict[str, tuple[int, ...]]]:
    """What must match between the source module and archspec's: its class, its public
    attributes (all constructor arguments; an int and a tuple of that int alike; in-place
    flags left out: they do not change values) and its state_dict keys and shapes."""
    attrs = {k: _plain(v) for k, v in vars(module).items()
             if not k.startswith("_") and k not in ("training", "inplace")}
    return (type(module).__qualname__, attrs,
            {k: tuple(v.shape) for k, v in module.state_dict().items()})


def _same(built: nn.Module, source: nn.Module, op_name: str) -> bool:
    """``built`` (archspec's module for ``op_name``) rebuilds ``source``: the same submodule
    paths, each of one class with every attribute of the source's at its value, and the same
    state_dict keys and shapes. An attribute the built module adds is fixed by its class
    (``cosine`` of archspec's one window-attention class for torchvision's two), and the
    top module's class may be named as the op instead (``patch_merging_v2``:
    ``PatchMergingV2``)."""
    mine, theirs = dict(built.named_modules()), dict(source.named_modules())
    if set(mine) != set(theirs):
        return False
    for path, sub in theirs.items():
        (cls, attrs, state), (src_cls, src_attrs, src_state) = (_signature(mine[path]),
                                                                _signature(sub))
        named = path == "" and _key(src_cls.rsplit(".", 1)[-1]) == _key(
            CLASS_OPS.get(type(source).__name__, op_name))
        if (cls != src_cls and not named) or state != src_state or not all(
                k in attrs and attrs[k] == v for k, v in src_attrs.items()):
            return False
    return True


def _attempt(op_name: str, module: nn.Module, ins: tuple[Shape, ...], out: Shape,
             use: tuple[int, int] | None) -> dict[str, Any] | None:
    """The attributes of ``op_name`` that rebuild ``module`` exactly, or None. ``use``: the
    module is called on one tensor passed that many times and result ``[item]`` is read
    (``attn(x, x, x)[0]``), as (times, item); None: called on its inputs as they are."""
    op = REGISTRY[op_name]
    values: dict[str, Any] = {}
    for field, info in op.attrs.model_fields.items():
        try:
            values[field] = _read(module, field)
        except KeyError:
            if info.is_required():
                return None
    try:
        attrs = op.attrs(**values)
        if op.infer(ins, attrs) != out:
            return None
        call = op.torch(Ctx(ins, out, attrs))
        if not isinstance(call, Module) or not (
                call.plain if use is None else (call.repeat, call.item) == use):
            return None
        with torch.device("meta"):  # shapes and attributes only: no initialisation
            built = build_module(call)
    except Exception:  # any candidate that does not fit is simply not this module's op
        return None
    if not _same(built, module, op_name):
        return None
    defaults = {f: i.default for f, i in op.attrs.model_fields.items() if not i.is_required()}
    return {k: v for k, v in attrs.model_dump().items()
            if k not in defaults or defaults[k] != v or op.attrs.model_fields[k].is_required()}


def _key(name: str) -> str:
    return name.lower().replace("_", "")


_MATCHES: dict[str, list[str]] = {}


def candidates(cls: type) -> list[str]:
    """Ops to try for a module class: those named as the class first, then all others."""
    name = cls.__name__
    if name not in _MATCHES:
        ops = sorted({op.name for op in REGISTRY.values()})
        named = [n for n in ops if _key(n) == _key(CLASS_OPS.get(name, name))]
        _MATCHES[name] = named + [n for n in ops if n not in named]
    return _MATCHES[name]


def has_named_op(cls: type) -> bool:
    """Whether an archspec op is named as the module class (``LayerNorm2d``: layernorm2d)."""
    first = candidates(cls)[0]
    return _key(first) == _key(CLASS_OPS.get(cls.__name__, cls.__name__))


def lift_module(module: nn.Module, ins: tuple[Shape, ...], out: Shape,
                use: tuple[int, int] | None = None) -> tuple[str, dict[str, Any]] | None:
    """The archspec op and attributes that rebuild ``module`` exactly (called as ``use``
    says, see :func:`_attempt`), or None."""
    for op_name in candidates(type(module)):
        attrs = _attempt(op_name, module, ins, out, use)
        if attrs is not None:
            return op_name, attrs
    return None


# ----------------------------------------------------------------------------- functions

Lifted = tuple[str, dict[str, Any]]
Rule = Callable[[list[Any], dict[str, Any], list[Any]], Lifted | None]


def _dim(d: int) -> int:
    """A torch dim as a per-sample dim (negative dims count from the end either way)."""
    return d - 1 if d > 0 else d


def _arg(args: list[Any], kwargs: dict[str, Any], i: int, name: str, default: Any) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _binary(op: str, scalar: str | None) -> Rule:
    """``a + b`` of two tensors is ``op``; with a number, the unary ``scalar`` op."""
    def rule(args: list[Any], kwargs: dict[str, Any], tensors: list[Any]) -> Lifted | None:
        if len(tensors) == 2:
            return op, {}
        numbers = [a for a in args if isinstance(a, int | float) and not isinstance(a, bool)]
        if scalar and len(tensors) == 1 and len(numbers) == 1:
            return scalar, {"factor" if scalar == "scale" else "value": float(numbers[0])}
        return None
    return rule


def _unary(op: str) -> Rule:
    return lambda args, kwargs, tensors: (op, {})


def _flatten(args: list[Any], kwargs: dict[str, Any], tensors: list[Any]) -> Lifted:
    start = _dim(_arg(args, kwargs, 1, "start_dim", 0))
    return "flatten", {"start": start, "end": _dim(_arg(args, kwargs, 2, "end_dim", -1))}


def _cat(args: list[Any], kwargs: dict[str, Any], tensors: list[Any]) -> Lifted | bool:
    if len(tensors) == 1:
        return True  # torch.cat of one tensor is that tensor
    return "concat", {"dim": _dim(_arg(args, kwargs, 1, "dim", 0))}


def _adaptive(args: list[Any], kwargs: dict[str, Any], tensors: list[Any]) -> Lifted:
    return "adaptive_avgpool2d", {"output": _plain(_arg(args, kwargs, 1, "output_size", 1))}


def _interpolate(args: list[Any], kwargs: dict[str, Any], tensors: list[Any], *,
                 out: Shape) -> Lifted | None:
    """``F.interpolate(x, size=..., mode=...)``: ``upsample`` to the output's spatial size
    seen on the probe run (torchvision's heads resize to the input image's size, fixed by the
    spec's input); without antialiasing or a recomputed scale."""
    if len(tensors) != 1 or _arg(args, kwargs, 6, "antialias", False) \
            or _arg(args, kwargs, 5, "recompute_scale_factor", None) is not None:
        return None
    mode = _arg(args, kwargs, 3, "mode", "nearest")
    corners = _arg(args, kwargs, 4, "align_corners", None)
    attrs: dict[str, Any] = {"size": _plain(tuple(out[1:])), "mode": mode}
    if corners is not None:
        attrs["align_corners"] = bool(corners)
    return "upsample", attrs


def _dropout(args: list[Any], kwargs: dict[str, Any], tensors: list[Any]) -> Lifted:
    return "dropout", {"p": float(_arg(args, kwargs, 1, "p", 0.5))}


def _mean(args: list[Any], kwargs: dict[str, Any], tensors: list[Any]) -> Lifted:
    dims = _arg(args, kwargs, 1, "dim", None)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return "mean", {"dims": _plain(tuple(_dim(d) for d in dims)) if len(dims) > 1
                    else _dim(dims[0]), "keepdim": bool(_arg(args, kwargs, 2, "keepdim", False))}


def _pool(op: str) -> Rule:
    """``F.avg_pool2d`` / ``F.max_pool2d`` with torch's argument order."""
    def rule(args: list[Any], kwargs: dict[str, Any], tensors: list[Any]) -> Lifted:
        kernel = _plain(_arg(args, kwargs, 1, "kernel_size", 1))
        stride = _arg(args, kwargs, 2, "stride", None)
        attrs = {"kernel": kernel, "stride": kernel if stride in (None, []) else _plain(stride),
                 "padding": _plain(_arg(args, kwargs, 3, "padding", 0))}
        if op == "avgpool2d":
            attrs["ceil"] = bool(_arg(args, kwargs, 4, "ceil_mode", False))
            attrs["count_include_pad"] = bool(_arg(args, kwargs, 5, "count_include_pad", True))
            if _arg(args, kwargs, 6, "divisor_override", None) is not None:
                raise ValueError("divisor_override")
        else:
            attrs["dilation"] = _plain(_arg(args, kwargs, 4, "dilation", 1))
            attrs["ceil"] = bool(_arg(args, kwargs, 5, "ceil_mode", False))
        return op, attrs
    return rule


def _dims(args: list[Any], kwargs: dict[str, Any], name: str) -> tuple[int, ...] | None:
    """Torch dims given as varargs or one sequence, as per-sample dims; None when they move
    the batch."""
    dims = args[1:] or list(kwargs.get(name, ()))
    if len(dims) == 1 and isinstance(dims[0], list | tuple):
        dims = list(dims[0])
    if not dims or dims[0] not in (0, -len(dims)):
        return None
    return tuple(_dim(d) for d in dims[1:])


def _permute(args: list[Any], kwargs: dict[str, Any], tensors: list[Any]) -> Lifted | None:
    dims = _dims(args, kwargs, "dims")
    return None if dims is None else ("permute", {"dims": dims})


def _transpose(args: list[Any], kwargs: dict[str, Any], tensors: list[Any]) -> Lifted | None:
    rank = tensors[0].dim()
    d0, d1 = (_arg(args, kwargs, i, f"dim{i - 1}", 0) % rank for i in (1, 2))
    if 0 in (d0, d1):
        return None
    return "transpose", {"dim0": d0 - 1, "dim1": d1 - 1}


def _softmax(args: list[Any], kwargs: dict[str, Any], tensors: list[Any]) -> Lifted | None:
    dim = _arg(args, kwargs, 1, "dim", None)
    return None if dim is None or dim % tensors[0].dim() == 0 else ("softmax", {"dim": _dim(dim)})


def _stochastic_depth(args: list[Any], kwargs: dict[str, Any], tensors: list[Any]) -> Lifted:
    return "stochastic_depth", {"p": float(_arg(args, kwargs, 1, "p", 0.0)),
                                "mode": _arg(args, kwargs, 2, "mode", "row")}


def _index(args: list[Any], kwargs: dict[str, Any], tensors: list[Any]) -> Lifted | None:
    """``x[:, i]`` is ``select``, ``x[:, a:b]`` is ``slice``: one index after the batch."""
    index = args[1] if isinstance(args[1], tuple) else (args[1],)
    full = slice(None, None, None)
    if len(index) < 2 or index[0] != full or Ellipsis in index:
        return None
    picks = [(d, i) for d, i in enumerate(index[1:]) if i != full]
    if len(picks) != 1:
        return None
    d, i = picks[0]
    if isinstance(i, int) and not isinstance(i, bool):
        return "select", {"dim": d, "index": i}
    if isinstance(i, slice) and all(v is None or isinstance(v, int)
                                    for v in (i.start, i.stop, i.step)):
        return "slice", {"dim": d, "start": i.start or 0, "end": i.stop, "step": i.step or 1}
    return None


def batchless_equation(equation: str, operands: int) -> str | None:
    """An einsum equation over batched tensors without its batch letter, or None: every term
    and the output lead with one letter found nowhere else (``bij,bjk->bik``: ``ij,jk->ik``);
    ``operands`` (two or more) terms, an explicit output, no ellipsis."""
    if "->" not in equation or "." in equation or operands < 2:
        return None
    lhs, out = equation.replace(" ", "").split("->", 1)
    terms = lhs.split(",")
    batch = out[:1]
    if len(terms) != operands or not batch or out.count(batch) != 1 or any(
            t[:1] != batch or t.count(batch) != 1 for t in terms):
        return None
    return ",".join(t[1:] for t in terms) + "->" + out[1:]


def _einsum(args: list[Any], kwargs: dict[str, Any], tensors: list[Any]) -> Lifted | None:
    """``torch.einsum("bij,bjk->bik", x, y)`` of activations: ``einsum("ij,jk->ik")``."""
    equation = args[0] if args and isinstance(args[0], str) else ""
    found = batchless_equation(equation, len(tensors))
    return None if found is None else ("einsum", {"equation": found})


#: methods and functions whose result is the input in a new per-sample shape: ``reshape``
#: to the output's per-sample shape (seen on the probe run).
RESHAPES = frozenset({"view", "reshape", torch.reshape})

#: torch function or method name -> rule; ``None`` marks an alias (the output is the input).
FUNCTIONS: dict[Any, Rule | None] = {
    operator.add: _binary("add", "shift"), operator.iadd: _binary("add", "shift"),
    torch.add: _binary("add", "shift"), "add": _binary("add", "shift"),
    operator.mul: _binary("mul", "scale"), torch.mul: _binary("mul", "scale"),
    operator.imul: _binary("mul", "scale"), "mul": _binary("mul", "scale"),
    operator.sub: _binary("sub", None), operator.truediv: _binary("div", None),
    torch.flatten: _flatten, "flatten": _flatten, torch.cat: _cat, torch.concat: _cat,
    F.relu: _unary("relu"), torch.relu: _unary("relu"), "relu": _unary("relu"),
    F.relu6: _unary("relu6"), F.hardswish: _unary("hardswish"),
    F.hardsigmoid: _unary("hardsigmoid"), F.silu: _unary("silu"),
    torch.sigmoid: _unary("sigmoid"), F.sigmoid: _unary("sigmoid"), "sigmoid": _unary("sigmoid"),
    torch.tanh: _unary("tanh"), F.gelu: _unary("gelu"),
    F.adaptive_avg_pool2d: _adaptive, F.dropout: _dropout, "mean": _mean, torch.mean: _mean,
    "contiguous": None, "clone": None,
    F.avg_pool2d: _pool("avgpool2d"), torch._C._nn.avg_pool2d: _pool("avgpool2d"),
    F.max_pool2d: _pool("maxpool2d"), torch.max_pool2d: _pool("maxpool2d"),
    torch.permute: _permute, "permute": _permute, torch.transpose: _transpose,
    "transpose": _transpose, torch.swapaxes: _transpose, "swapaxes": _transpose,
    torch.swapdims: _transpose, "swapdims": _transpose, F.softmax: _softmax,
    torch.softmax: _softmax, "softmax": _softmax,
    torch.matmul: _binary("matmul", None), operator.matmul: _binary("matmul", None),
    operator.getitem: _index,
    torch.einsum: _einsum, torch.functional.einsum: _einsum,
}
#: rules that also read the call's per-sample output shape, seen on the probe run
SIZED: dict[Any, Callable[..., Lifted | None]] = {F.interpolate: _interpolate}
#: functions of other packages by qualified name, so that importing archspec imports none of
#: them (torchvision costs seconds): a model that calls one has imported it already
QUALIFIED: dict[str, Rule] = {
    "torchvision.ops.stochastic_depth.stochastic_depth": _stochastic_depth,
}


def function_name(target: Any) -> str:
    """How an error names a function: ``torch.flatten``, ``Tensor.view``."""
    if isinstance(target, str):
        return f"Tensor.{target}"
    module = getattr(target, "__module__", None) or "torch"
    return f"{module}.{getattr(target, '__name__', repr(target))}"


def lift_function(target: Any, args: list[Any], kwargs: dict[str, Any], tensors: list[Any],
                  out: Shape) -> Lifted | None | bool:
    """The op of a function call with per-sample output shape ``out``, ``True`` for an alias
    of its input, None when unknown (or when this use moves the batch dim)."""
    if _hashable(target) and target in RESHAPES:
        return ("reshape", {"shape": out}) if len(tensors) == 1 else None
    try:
        rule = functools.partial(SIZED[target], out=out) if target in SIZED else \
            FUNCTIONS[target]
    except (KeyError, TypeError):
        qualified = f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', '')}"
        rule = QUALIFIED.get(qualified)
        if rule is None:
            return None
    if rule is None:
        return True
    try:
        return rule(args, kwargs, tensors)  # type: ignore[return-value]
    except (ValueError, TypeError, IndexError):  # an argument this rule cannot express
        return None


def _hashable(target: Any) -> bool:
    try:
        hash(target)
    except TypeError:
        return False
    return True

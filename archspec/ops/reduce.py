"""Reductions over named per-sample dims (0 = channels/features, then the spatial dims; no
batch): ``sum``, ``amax``, ``amin``, ``var``, ``std`` and the vector ``norm`` (p = 1, 2 or
inf), each over ``dims`` (an int or a list, negative counting from the end), which leave the
shape unless ``keepdim`` keeps them as size 1; and ``normalize`` (F.normalize: x divided by
its p-norm along one dim, shape unchanged). ``mean`` lives in tensor.py.

Torch calls take the batched dim ``dim + 1``. No parameters; FLOPs per input element as each
op's doc says. Category ``reduce``, as ``mean``: none of the counting conventions' tools
counts them (measured in tests/test_op_conventions.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pydantic import field_validator, model_validator

from archspec.ops.base import (
    GLOBAL,
    POINTWISE,
    Attrs,
    Category,
    Cost,
    Ctx,
    Function,
    OpDef,
    Shape,
    ShapeError,
    Step,
    changed,
    check_positive_float,
    fmt_shape,
    function,
    numel,
)
from archspec.ops.registry import register

Dims = int | tuple[int, ...]


def _show(dims: Dims) -> str:
    return str(dims) if isinstance(dims, int) else str(list(dims))


def check_dim(op: str, x: Shape, dim: int, name: str = "dim", given: str | None = None) -> int:
    """``dim`` of the per-sample shape ``x`` (negative from the end), checked to exist; the
    message names the attribute ``name`` and its value ``given`` (default: ``dim``)."""
    if not -len(x) <= dim < len(x):
        raise ShapeError(f"`{name}` (={dim if given is None else given}) of `{op}`: dim {dim} "
                         f"is out of range for a {fmt_shape(x)} input (rank {len(x)})",
                         hint=f"per-sample dims count from 0 (channels or features) to "
                              f"{len(x) - 1}, or from -1 at the end; the batch is not one")
    return dim % len(x)


def reduced(op: str, x: Shape, dims: Dims) -> tuple[int, ...]:
    """The sorted per-sample dims a reduction over ``dims`` removes, checked: each in range,
    none twice, at least one."""
    given = (dims,) if isinstance(dims, int) else tuple(dims)
    out = tuple(sorted({check_dim(op, x, d, "dims", _show(dims)) for d in given}))
    if len(out) != len(given) or not out:
        raise ShapeError(f"`dims` (={_show(dims)}) of `{op}` must be distinct and at least one",
                         hint=f"e.g. {op}([1, 2]) reduces the spatial dims of a (C, H, W) map")
    return out


class ReduceAttrs(Attrs):
    dims: Dims
    keepdim: bool = False


class VarAttrs(Attrs):
    dims: Dims
    correction: int = 1
    keepdim: bool = False

    @field_validator("correction")
    @classmethod
    def _non_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"`correction` (={v}) must be non-negative")
        return v


class NormAttrs(Attrs):
    p: int | float = 2
    dims: Dims
    keepdim: bool = False

    @field_validator("p", mode="before")
    @classmethod
    def _order(cls, v: Any) -> Any:
        if isinstance(v, bool) or v not in (1, 2, math.inf, "inf"):
            spelt = str(v).lower() if isinstance(v, bool) else f'"{v}"' if isinstance(
                v, str) else repr(v)
            raise ValueError(f"`p` (={spelt}) must be 1, 2 or \"inf\"")
        return v


def _kept(x: Shape, dims: tuple[int, ...], keepdim: bool) -> Shape:
    """``x`` without ``dims``, or with them as size 1 when ``keepdim``."""
    if keepdim:
        return tuple(1 if i in dims else n for i, n in enumerate(x))
    return tuple(n for i, n in enumerate(x) if i not in dims)


def _reduction_step(op: str) -> Callable[[Ctx], Step]:
    """As mean's: global once the first spatial dim is reduced (or moves, channels dropped)."""

    def step(ctx: Ctx) -> Step:
        dims = reduced(op, ctx.x, ctx.attrs.dims)
        return GLOBAL if 1 in dims or (0 in dims and not ctx.attrs.keepdim) else POINTWISE

    return step


def _per_element_cost(per_input: int, per_output: int = 0) -> Callable[[Ctx], Cost]:
    def cost(ctx: Ctx) -> Cost:
        n_in, n_out = numel(ctx.x), numel(ctx.out)
        return Cost(flops=per_input * n_in + per_output * n_out, in_numel=n_in, out_numel=n_out)

    return cost


def reduce_node(b: Any, op_type: str, x: str, axes: list[int], out: str, keep: bool) -> None:
    """One ONNX ``Reduce*`` node over the batched ``axes``: the axes an input where the opset
    takes them so (ReduceSum from opset 13, the others from 18), else an attribute."""
    if op_type == "ReduceSum" or b.opset >= 18:
        b.node(op_type, [x, b.const("axes", axes, "int64")], [out], keepdims=int(keep))
    else:
        b.node(op_type, [x], [out], axes=axes, keepdims=int(keep))


def _torch_kwargs(ctx: Ctx, op: str) -> dict[str, Any]:
    """``dim`` (batched) and ``keepdim`` where it is not torch's default."""
    dims = tuple(d + 1 for d in reduced(op, ctx.x, ctx.attrs.dims))
    return {"dim": dims, **changed({"keepdim": False}, keepdim=ctx.attrs.keepdim)}


# ------------------------------------------------------------------------ sum, amax, amin


def _simple(op: str, target: str, onnx_type: str, what: str) -> OpDef:
    def to_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        axes = [d + 1 for d in reduced(op, ctx.x, ctx.attrs.dims)]
        reduce_node(b, onnx_type, inputs[0], axes, output, ctx.attrs.keepdim)

    return OpDef(
        name=op, attrs=ReduceAttrs, positional=("dims", "keepdim"),
        infer=lambda inputs, a: _kept(inputs[0], reduced(op, inputs[0], a.dims), a.keepdim),
        cost=_per_element_cost(1), step=_reduction_step(op), category=Category.REDUCE,
        torch=lambda ctx: function(target, **_torch_kwargs(ctx, op)), onnx=to_onnx,
        keeps_output=op != "sum",  # amax/amin's backward compares the input with the result
        doc=f"{what} over per-sample `dims` (an int or a list; 0 = channels, negative from "
            f"the end), dropped from the shape unless `keepdim` keeps them as size 1 "
            f"({target}). FLOPs: 1 per input element.")


register(_simple("sum", "torch.sum", "ReduceSum", "Sum"))
register(_simple("amax", "torch.amax", "ReduceMax", "Maximum"))
register(_simple("amin", "torch.amin", "ReduceMin", "Minimum"))

# ------------------------------------------------------------------------ var, std


def _var_infer(op: str) -> Callable[[tuple[Shape, ...], VarAttrs], Shape]:
    def infer(inputs: tuple[Shape, ...], a: VarAttrs) -> Shape:
        x = inputs[0]
        dims = reduced(op, x, a.dims)
        count = math.prod(x[d] for d in dims)
        if count <= a.correction:
            raise ShapeError(f"`correction` (={a.correction}) of `{op}` leaves no degrees of "
                             f"freedom: {count} element(s) per result",
                             hint="reduce more elements, or correction=0 for the population "
                                  "statistic (torch would give nan or inf)")
        return _kept(x, dims, a.keepdim)

    return infer


def _var_onnx(op: str) -> Callable[..., None]:
    """sum((x - mean)^2) / (n - correction) over the axes; std its square root."""

    def emit(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
        a: VarAttrs = ctx.attrs
        dims = reduced(op, ctx.x, a.dims)
        axes = [d + 1 for d in dims]
        x = inputs[0]
        reduce_node(b, "ReduceMean", x, axes, b.tmp("mean"), True)
        b.node("Sub", [x, b.tmp("mean")], [b.tmp("centred")])
        b.node("Mul", [b.tmp("centred"), b.tmp("centred")], [b.tmp("squares")])
        reduce_node(b, "ReduceSum", b.tmp("squares"), axes, b.tmp("sum"), a.keepdim)
        count = math.prod(ctx.x[d] for d in dims) - a.correction
        var = output if op == "var" else b.tmp("var")
        b.node("Div", [b.tmp("sum"), b.const("count", float(count))], [var])
        if op == "std":
            b.node("Sqrt", [var], [output])

    return emit


def _var_torch(op: str) -> Callable[[Ctx], Function]:
    def build(ctx: Ctx) -> Function:
        return function(f"torch.{op}", **_torch_kwargs(ctx, op),
                        **changed({"correction": 1}, correction=ctx.attrs.correction))

    return build


for _op, _doc in (("var", "Variance"), ("std", "Standard deviation")):
    register(OpDef(
        name=_op, attrs=VarAttrs, positional=("dims", "correction", "keepdim"),
        infer=_var_infer(_op), cost=_per_element_cost(4, int(_op == "std")),
        step=_reduction_step(_op), category=Category.REDUCE, torch=_var_torch(_op),
        onnx=_var_onnx(_op), keeps_output=_op == "std",
        doc=f"{_doc} over per-sample `dims` (an int or a list; 0 = channels), dividing by "
            "n - `correction` (1: Bessel's, as torch; 0: the population statistic), which must "
            "stay positive; `dims` dropped unless `keepdim` (torch." + _op + "). FLOPs: 4 per "
            "input element (mean, difference, square, sum)"
            + (", 1 per result (square root)." if _op == "std" else ".")))

# ------------------------------------------------------------------------ norm


def _norm_onnx(b: Any, p: float, x: str, axes: list[int], out: str, keep: bool) -> None:
    """The p-norm (1, 2 or inf) over the batched ``axes``."""
    if p == math.inf:
        b.node("Abs", [x], [b.tmp("abs")])
        reduce_node(b, "ReduceMax", b.tmp("abs"), axes, out, keep)
    else:
        reduce_node(b, "ReduceL1" if p == 1 else "ReduceL2", x, axes, out, keep)


def _norm_torch(ctx: Ctx) -> Function:
    return function("torch.linalg.vector_norm", **changed({"ord": 2}, ord=ctx.attrs.p),
                    **_torch_kwargs(ctx, "norm"))


register(OpDef(
    name="norm", attrs=NormAttrs, positional=("p", "dims", "keepdim"),
    infer=lambda inputs, a: _kept(inputs[0], reduced("norm", inputs[0], a.dims), a.keepdim),
    cost=_per_element_cost(2), step=_reduction_step("norm"), category=Category.REDUCE,
    torch=_norm_torch, keeps_output=True,
    onnx=lambda ctx, b, inputs, output: _norm_onnx(
        b, float(ctx.attrs.p), inputs[0], [d + 1 for d in reduced("norm", ctx.x, ctx.attrs.dims)],
        output, ctx.attrs.keepdim),
    doc="The vector p-norm over per-sample `dims` (an int or a list; 0 = channels): `p` 1 (sum "
        "of magnitudes), 2 (Euclidean) or \"inf\" (largest magnitude); `dims` dropped unless "
        "`keepdim` (torch.linalg.vector_norm). FLOPs: 2 per input element."))

# ------------------------------------------------------------------------ normalize


class NormalizeAttrs(Attrs):
    p: float = 2.0
    dim: int = -1
    eps: float = 1e-12

    @model_validator(mode="after")
    def _domains(self) -> NormalizeAttrs:
        if not self.p > 0:
            raise ValueError(f"`p` (={self.p}) must be positive (\"inf\": the largest "
                             "magnitude)")
        check_positive_float(self, "eps")
        return self


def _normalize_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """x / max(||x||_p, eps) along the dim (kept as size 1, broadcast back)."""
    a: NormalizeAttrs = ctx.attrs
    x, axes = inputs[0], [check_dim("normalize", ctx.x, a.dim) + 1]
    if a.p in (1, 2, math.inf):
        _norm_onnx(b, a.p, x, axes, b.tmp("norm"), True)
    else:  # (sum |x|^p)^(1/p)
        b.node("Abs", [x], [b.tmp("abs")])
        b.node("Pow", [b.tmp("abs"), b.const("p", a.p)], [b.tmp("powers")])
        reduce_node(b, "ReduceSum", b.tmp("powers"), axes, b.tmp("sum"), True)
        b.node("Pow", [b.tmp("sum"), b.const("inverse_p", 1.0 / a.p)], [b.tmp("norm")])
    b.node("Max", [b.tmp("norm"), b.const("eps", a.eps)], [b.tmp("denominator")])
    b.node("Div", [x, b.tmp("denominator")], [output])


def _normalize_torch(ctx: Ctx) -> Function:
    a: NormalizeAttrs = ctx.attrs
    return function("torch.nn.functional.normalize", **changed({"p": 2.0}, p=a.p),
                    dim=check_dim("normalize", ctx.x, a.dim) + 1,
                    **changed({"eps": 1e-12}, eps=a.eps))


def _normalize_infer(inputs: tuple[Shape, ...], a: NormalizeAttrs) -> Shape:
    check_dim("normalize", inputs[0], a.dim)
    return inputs[0]


register(OpDef(
    name="normalize", attrs=NormalizeAttrs, positional=("p", "dim", "eps"),
    infer=_normalize_infer, cost=_per_element_cost(3), category=Category.REDUCE,
    step=lambda ctx: GLOBAL if check_dim("normalize", ctx.x, ctx.attrs.dim) == 1
    else POINTWISE,
    torch=_normalize_torch, onnx=_normalize_onnx,
    doc="x divided by its `p`-norm along per-sample `dim` (default the last), at least `eps` "
        "(F.normalize; `p` any positive number, \"inf\" the largest magnitude): e.g. unit-"
        "length embeddings. Shape unchanged; FLOPs: 3 per element (the norm's 2, the "
        "division)."))

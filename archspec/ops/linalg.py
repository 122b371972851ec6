"""Products of activations: ``matmul``, ``einsum`` and ``scaled_dot_product_attention``.

Shapes are per sample (the batch is implicit and never named): ``matmul`` takes ``(..., M, K)``
and ``(..., K, P)`` to ``(..., M, P)``; ``einsum`` indexes the per-sample dims only;
attention takes queries ``(..., L, E)``, keys ``(..., S, E)`` and values ``(..., S, Ev)`` to
``(..., L, Ev)``. Costs are per sample, in elements and multiply-accumulates: both operands
are activations, so every MAC is also a ``products`` MAC (tools that count weights alone skip
them).
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

from pydantic import field_validator, model_validator

from archspec.ops.base import (
    GLOBAL,
    Attrs,
    Category,
    Cost,
    Ctx,
    Function,
    Module,
    NoAttrs,
    OpDef,
    Shape,
    ShapeError,
    changed,
    fmt_shape,
    function,
    module,
    numel,
)
from archspec.ops.registry import register

HELPERS = "archspec.backends.modules"


def _lead(op: str, shapes: tuple[Shape, ...], names: tuple[str, ...]) -> Shape:
    """The broadcast of the leading dims (all but the last two) of equal-rank inputs of rank 2
    or more: each dim equal or 1. The batch in front makes a rank difference misalign (torch
    would broadcast the batch into a per-sample dim), so ranks must match."""
    for name, s in zip(names, shapes):
        if len(s) < 2:
            raise ShapeError(f"`{op}` needs {name} of rank 2 or more per sample (..., rows, "
                             f"cols), got {fmt_shape(s)}", code="E303",
                             hint="make a vector a one-row matrix: reshape([1, -1])")
    if len({len(s) for s in shapes}) != 1:
        raise ShapeError(f"`{op}` inputs have different ranks: "
                         + ", ".join(f"{n} {fmt_shape(s)}" for n, s in zip(names, shapes)),
                         code="E305", hint="give every input the same number of dims per "
                                           "sample (a size-1 dim broadcasts)")
    out = []
    for i, dims in enumerate(zip(*(s[:-2] for s in shapes))):
        size = max(dims)
        if any(d not in (1, size) for d in dims):
            raise ShapeError(f"`{op}` leading dim {i} does not broadcast: sizes "
                             f"{', '.join(map(str, dims))}", code="E305",
                             hint="each leading dim must be equal across inputs or 1")
        out.append(size)
    return tuple(out)


# ------------------------------------------------------------------------ matmul


def _matmul_infer(inputs: tuple[Shape, ...], a: NoAttrs) -> Shape:
    if len(inputs) != 2:
        raise ShapeError(f"`matmul` takes two inputs, got {len(inputs)}", code="E214",
                         hint="chain products: `ab = matmul(a, b)`, then `matmul(ab, c)`")
    x, y = inputs
    lead = _lead("matmul", inputs, ("a", "b"))
    if x[-1] != y[-2]:
        raise ShapeError(f"`matmul` inner dims differ: a is {fmt_shape(x)}, b is "
                         f"{fmt_shape(y)} ({x[-1]} columns of a, {y[-2]} rows of b)",
                         hint="a's last dim must equal b's second to last; transpose(-1, -2) "
                              "one of them?")
    return (*lead, x[-2], y[-1])


def _matmul_cost(ctx: Ctx) -> Cost:
    """K MACs per output element (K: the contracted dim), all of them ``products``.
    ``positions``: a's elements times b's columns, what fvcore and ptflops count (the MACs,
    unless a's leading dims are broadcast)."""
    x, y = ctx.inputs
    macs = numel(ctx.out) * x[-1]
    return Cost(macs=macs, products=macs, flops=2 * macs, in_numel=numel(x) + numel(y),
                out_numel=numel(ctx.out), positions=numel(x) * y[-1])


register(OpDef(name="matmul", attrs=NoAttrs, infer=_matmul_infer, cost=_matmul_cost,
               inputs=(2, None), step=lambda ctx: GLOBAL, category=Category.MATMUL,
               torch=lambda ctx: function("torch.matmul"),
               onnx=lambda ctx, b, inputs, output: b.node("MatMul", inputs, [output]),
               doc="Matrix product of two activations, `matmul(a, b)` (torch.matmul): "
                   "(..., M, K) x (..., K, P) -> (..., M, P), the leading dims broadcast "
                   "(equal or 1; equal ranks, 2 or more). MACs: M x P x K per leading "
                   "index, all activation products; FLOPs 2 per MAC."))

# ------------------------------------------------------------------------ einsum

LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_equation(equation: str) -> tuple[list[str], str]:
    """The operands' index letters and the output's, from ``"ij,jk->ik"`` (spaces ignored);
    ``ValueError`` naming the attribute when the equation is malformed."""
    eq = equation.replace(" ", "")
    where = f"`equation` (={equation!r})"
    bad = sorted(set(eq) - LETTERS - set(",->"))
    if bad:
        raise ValueError(f"{where}: {bad[0]!r} is not an index; indices are letters a-z, A-Z "
                         "over the per-sample dims (the batch is implicit: no '...')")
    if eq.count("->") != 1 or eq.count("-") != 1 or eq.count(">") != 1:
        raise ValueError(f"{where} needs one '->' between the operands and the output, e.g. "
                         "'ij,jk->ik'")
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    for letter in out:
        if out.count(letter) > 1:
            raise ValueError(f"{where}: output index {letter!r} appears twice")
        if not any(letter in t for t in terms):
            raise ValueError(f"{where}: output index {letter!r} appears in no operand")
    return terms, out


class EinsumAttrs(Attrs):
    equation: str

    @field_validator("equation")
    @classmethod
    def _syntax(cls, v: str) -> str:
        parse_equation(v)
        return v.replace(" ", "")


def _extents(inputs: tuple[Shape, ...], a: EinsumAttrs) -> tuple[list[str], str, dict[str, int]]:
    """Terms, output and the extent of every index, checked against the inputs."""
    terms, out = parse_equation(a.equation)
    if len(terms) != len(inputs):
        raise ShapeError(f"`einsum` equation {a.equation!r} has {len(terms)} operand(s), the "
                         f"call gives {len(inputs)} input(s)", code="E214",
                         hint="one comma-separated term per input, in order")
    sizes: dict[str, int] = {}
    for i, (term, shape) in enumerate(zip(terms, inputs), start=1):
        if len(term) != len(shape):
            raise ShapeError(f"`einsum` operand {i} {term!r} names {len(term)} dim(s), input {i}"
                             f" is {fmt_shape(shape)} (rank {len(shape)})", code="E303",
                             hint="one letter per per-sample dim; the batch is not named")
        for letter, size in zip(term, shape):
            if sizes.setdefault(letter, size) != size:
                raise ShapeError(f"`einsum` index {letter!r} is {sizes[letter]} in one operand "
                                 f"and {size} in operand {i}",
                                 hint="an index shared by operands must have one extent")
    return terms, out, sizes


def path_flops(terms: list[str], out: str, sizes: dict[str, int]) -> int:
    """FLOPs of the cheapest pairwise contraction order, as ``numpy.einsum_path(...,
    optimize="optimal")`` finds and counts it (less the 1 it adds to the printed count): per
    contraction, the extents of its indices times (terms - 1, at least 1, + 1 when it sums an
    index away); intermediates no larger than the largest operand or output."""
    def size(indices: Any) -> int:
        return math.prod(sizes[i] for i in indices)

    def contract(pos: tuple[int, ...], sets: list[set[str]]) -> tuple[int, list[set[str]]]:
        inside = set().union(*(sets[i] for i in pos))
        rest = [s for i, s in enumerate(sets) if i not in pos]
        kept = set(out).union(*rest) & inside
        return size(inside) * (max(1, len(pos) - 1) + bool(inside - kept)), [*rest, kept]

    sets = [set(t) for t in terms]
    if len(sets) <= 2 or set().union(*sets) == set(out):
        return contract(tuple(range(len(sets))), sets)[0]
    limit = max(size(t) for t in [*terms, out])
    results: list[tuple[int, list[set[str]]]] = [(0, sets)]
    for step in range(len(sets) - 1):
        found = []
        for cost, remaining in results:
            for pos in combinations(range(len(sets) - step), 2):
                flops, after = contract(pos, remaining)
                if size(after[-1]) <= limit:
                    found.append((cost + flops, after))
        if not found:
            cost, remaining = min(results, key=lambda r: r[0])
            return cost + contract(tuple(range(len(remaining))), remaining)[0]
        results = found
    return min(r[0] for r in results)


def _einsum_infer(inputs: tuple[Shape, ...], a: EinsumAttrs) -> Shape:
    _, out, sizes = _extents(inputs, a)
    return tuple(sizes[letter] for letter in out)


def torch_macs(terms: list[str], out: str, sizes: dict[str, int]) -> tuple[int, int]:
    """MACs of the matrix products ``torch.einsum`` runs, and the elements of the element-wise
    products it runs instead where a pair sums nothing: it contracts the operands left to right
    (without opt_einsum), summing an index once no later operand nor the output holds it (an
    index of one operand alone is summed out first); extent-1 indices broadcast."""
    live = [{i for i in t if sizes[i] > 1} for t in terms]
    keep = {i for i in out if sizes[i] > 1}
    acc, macs, elements = live[0], 0, 0
    for j, other in enumerate(live[1:], start=1):
        later = keep.union(*live[j + 1:])
        left = {i for i in acc if i in later or i in other}
        right = {i for i in other if i in later or i in acc}
        summed = (left & right) - later
        extent = math.prod(sizes[i] for i in left | right)
        if summed:
            macs += extent
        else:
            elements += extent
        acc = (left | right) - summed
    return macs, elements


def _einsum_cost(ctx: Ctx) -> Cost:
    """MACs: the matrix products torch runs (:func:`torch_macs`; two operands that share a
    summed index: the product of every index's extent), all of them ``products``. FLOPs: 2 per
    MAC and 1 per element of an element-wise product. ``positions``: numpy's FLOPs of the
    cheapest contraction order (:func:`path_flops`), which fvcore counts."""
    terms, out, sizes = _extents(ctx.inputs, ctx.attrs)
    macs, elements = torch_macs(terms, out, sizes)
    return Cost(macs=macs, products=macs, flops=2 * macs + elements,
                in_numel=sum(map(numel, ctx.inputs)), out_numel=numel(ctx.out),
                positions=path_flops(terms, out, sizes))


def batched_equation(equation: str) -> str:
    """The equation over batched tensors: an ellipsis before every term stands for the batch."""
    terms, out = parse_equation(equation)
    return ",".join(f"...{t}" for t in terms) + f"->...{out}"


register(OpDef(name="einsum", attrs=EinsumAttrs, infer=_einsum_infer, cost=_einsum_cost,
               inputs=(2, None), step=lambda ctx: GLOBAL, category=Category.EINSUM,
               positional=("equation",),
               torch=lambda ctx: function(f"{HELPERS}.einsum",
                                          equation=batched_equation(ctx.attrs.equation)),
               onnx=lambda ctx, b, inputs, output: b.node(
                   "Einsum", inputs, [output], equation=batched_equation(ctx.attrs.equation)),
               doc="Einstein summation of two or more activations, `einsum(\"hld,hsd->hls\")(q, "
                   "k)` (torch.einsum): one letter per per-sample dim, an explicit `->` output "
                   "(the batch is implicit). MACs: the matrix products torch runs, left to "
                   "right (two operands sharing a summed index: the product of every index's "
                   "extent; nothing summed: an element-wise product, 0 MACs)."))

# ------------------------------------------------------------------------ attention


class AttentionAttrs(Attrs):
    scale: float | None = None
    causal: bool = False
    dropout: float = 0.0

    @model_validator(mode="after")
    def _domains(self) -> AttentionAttrs:
        if self.scale is not None and not 0 < self.scale < math.inf:
            raise ValueError(f"`scale` (={self.scale}) must be a positive number (or none: "
                             "1 / sqrt(E))")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`dropout` (={self.dropout}) must be at least 0 and below 1")
        return self


def _attention_infer(inputs: tuple[Shape, ...], a: AttentionAttrs) -> Shape:
    if len(inputs) > 4:
        raise ShapeError(f"`scaled_dot_product_attention` takes q, k, v and an optional mask, "
                         f"got {len(inputs)} inputs", code="E214",
                         hint="scaled_dot_product_attention(q, k, v) or (q, k, v, mask)")
    q, k, v = inputs[:3]
    lead = _lead("scaled_dot_product_attention", inputs[:3], ("q", "k", "v"))
    if q[:-2] != lead or k[:-2] != lead or v[:-2] != lead:
        raise ShapeError(f"`scaled_dot_product_attention` q, k and v have different leading "
                         f"dims: {fmt_shape(q)}, {fmt_shape(k)}, {fmt_shape(v)}", code="E305",
                         hint="split q, k and v into the same heads: (heads, tokens, dim)")
    if k[-1] != q[-1] or v[-2] != k[-2]:
        raise ShapeError(f"`scaled_dot_product_attention` needs q (..., L, E), k (..., S, E) "
                         f"and v (..., S, Ev), got {fmt_shape(q)}, {fmt_shape(k)}, "
                         f"{fmt_shape(v)}", hint="q and k share E, k and v share S")
    if len(inputs) == 4:
        if a.causal:
            raise ShapeError("`causal` (=true) cannot be combined with a mask input",
                             hint="add the causal mask to the mask input instead")
        mask, scores = inputs[3], (*lead, q[-2], k[-2])
        if len(mask) != len(scores) or any(m not in (1, s) for m, s in zip(mask, scores)):
            raise ShapeError(f"`scaled_dot_product_attention` mask {fmt_shape(mask)} does not "
                             f"broadcast to the {fmt_shape(scores)} scores", code="E305",
                             hint="an additive mask of shape (..., L, S), size-1 dims broadcast")
    return (*lead, q[-2], v[-1])


def _attention_cost(ctx: Ctx) -> Cost:
    """QK^T (L x S x E) and AV (L x S x Ev) per leading index, all ``products``. FLOPs: 2 per
    MAC, the scaling (1 per score), the softmax (3 per score) and the mask (1 per score).
    ``scratch`` and ``positions``: the L x S scores per leading index."""
    q, k, v = ctx.inputs[:3]
    scores = numel(q[:-1]) * k[-2]
    macs = scores * (q[-1] + v[-1])
    extra = 4 + (len(ctx.inputs) == 4)
    return Cost(macs=macs, products=macs, flops=2 * macs + extra * scores,
                in_numel=sum(map(numel, ctx.inputs)), out_numel=numel(ctx.out),
                positions=scores, scratch=scores)


def _attention_torch(ctx: Ctx) -> Function | Module:
    """``F.scaled_dot_product_attention`` (its fused kernels on GPU); with dropout, a module
    that drops only while training (the functional drops whenever ``dropout_p`` > 0)."""
    a: AttentionAttrs = ctx.attrs
    if a.dropout:
        return module(f"{HELPERS}.ScaledDotProductAttention", a.dropout,
                      **changed({"causal": False, "scale": None}, causal=a.causal, scale=a.scale))
    return function("torch.nn.functional.scaled_dot_product_attention",
                    **changed({"is_causal": False, "scale": None}, is_causal=a.causal,
                              scale=a.scale))


def _attention_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """softmax(q k^T x scale + mask) v: MatMul, Mul, Add (the mask, or -inf above the
    diagonal when causal), Softmax over the keys, MatMul. Dropout is a training op: none."""
    q, k = ctx.inputs[:2]
    rank = len(q) + 1
    perm = [*range(rank - 2), rank - 1, rank - 2]
    b.node("Transpose", [inputs[1]], [b.tmp("k_t")], perm=perm)
    b.node("MatMul", [inputs[0], b.tmp("k_t")], [b.tmp("scores")])
    scale = ctx.attrs.scale if ctx.attrs.scale is not None else q[-1] ** -0.5
    b.node("Mul", [b.tmp("scores"), b.const("scale", scale)], [b.tmp("scaled")])
    logits = b.tmp("scaled")
    mask = inputs[3] if len(inputs) == 4 else None
    if ctx.attrs.causal:
        rows, cols = q[-2], k[-2]
        mask = b.const("causal", [[0.0 if j <= i else -math.inf for j in range(cols)]
                                  for i in range(rows)])
    if mask is not None:
        b.node("Add", [logits, mask], [b.tmp("masked")])
        logits = b.tmp("masked")
    b.node("Softmax", [logits], [b.tmp("weights")], axis=-1)
    b.node("MatMul", [b.tmp("weights"), inputs[2]], [output])


register(OpDef(name="scaled_dot_product_attention", attrs=AttentionAttrs,
               infer=_attention_infer, cost=_attention_cost, inputs=(3, None),
               step=lambda ctx: GLOBAL, category=Category.SDPA, torch=_attention_torch,
               onnx=_attention_onnx, keeps_output=True,
               doc="Attention of queries q (..., L, E) over keys k (..., S, E) and values v "
                   "(..., S, Ev): softmax(q k^T x `scale` + mask) v -> (..., L, Ev), as "
                   "torch.nn.functional.scaled_dot_product_attention (its fused kernels on "
                   "GPU). `scale` none = 1 / sqrt(E); `causal` masks keys after the query; "
                   "`dropout` on the weights while training; an optional 4th input is an "
                   "additive (..., L, S) mask. MACs: L x S x (E + Ev) per leading index, all "
                   "products; memory: the L x S scores."))

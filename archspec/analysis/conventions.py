"""Counting conventions: how third-party tools count "MACs"/"FLOPs", reproduced from our costs.

Each convention is a table with one rule per op :class:`Category` (a test checks that no
category is missing), mapping an op's :class:`Cost` (per sample) to that tool's count. The
``torchvision`` convention is archspec's ``macs``; the others let a user compare numbers with
the tool they already use. See docs/conventions.md for the table and sources.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from archspec.ops.base import Category, Cost

C = Category
Rule = Callable[[Cost], int]


def zero(c: Cost) -> int:
    return 0


def macs(c: Cost) -> int:
    return c.macs


def macs_bias(c: Cost) -> int:
    return c.macs + c.bias


def params(c: Cost) -> int:
    return c.params


def in_numel(c: Cost) -> int:
    return c.in_numel


def out_numel(c: Cost) -> int:
    return c.out_numel


def params_per_position(c: Cost) -> int:
    """torchinfo on a transposed convolution: every parameter (bias included) once per output
    position, as for an ordinary convolution."""
    return c.params * c.positions


def weights_per_position(c: Cost) -> int:
    """thop on a transposed convolution: the weights once per output position (no bias)."""
    return c.params * c.positions - c.bias


def softmax_ops(c: Cost) -> int:
    """thop's softmax: per row of n, n exps, n - 1 adds and n divides."""
    return 3 * c.out_numel - c.positions


def lrn_ops(c: Cost) -> int:
    """ptflops on LRN: torch squares, scales and shifts (three patched tensor ops, numel each)
    and average-pools the zero-padded squares (the pool's input numel)."""
    return 3 * c.out_numel + c.positions


def projections(c: Cost) -> int:
    """fvcore on attention: the Q, K, V and output projections (its aten.linear handles), not
    the QK^T and AV products (scaled_dot_product_attention has no handle): the MACs less
    2 x T x (T x D) for T tokens (``positions``) of D features."""
    return c.macs - 2 * c.positions * c.in_numel


def ptflops_attention(c: Cost) -> int:
    """ptflops' nn.MultiheadAttention hook: the MACs, the scaling of Q (T x D), the input
    projection's bias (3 T x D) when it has one, the output projection's bias (T x D, always),
    and one per attention score (softmax: heads x T^2, ``scratch``)."""
    return c.macs + 2 * c.in_numel + 3 * c.bias // 4 + c.scratch


def products_and_logits(c: Cost) -> int:
    """ptflops on Swin's window attention: the patched ``Tensor.matmul`` calls (QK^T and AV)
    and ``F.softmax`` (numel of the logits); its ``F.linear`` patch is disabled, so the q/k/v
    and output projections, called functionally, count nothing."""
    return c.products + c.positions


def av_and_logits(c: Cost) -> int:
    """ptflops on Swin v2's cosine attention: only AV is a patched ``Tensor.matmul`` (QK^T is
    the ``@`` operator), plus ``F.softmax``."""
    return c.products // 2 + c.positions


def mlp_ops(c: Cost) -> int:
    """ptflops on Swin v2's position MLP: its nn.Linear modules (MACs + bias) and its nn.ReLU,
    counted twice (module hook and the F.relu it calls)."""
    return c.macs + c.bias + 2 * c.out_numel


def projection_macs(c: Cost) -> int:
    """Weight MACs of an attention's projections alone: its MACs less the two products."""
    return c.macs - c.products


def projection_ops(c: Cost) -> int:
    """ptflops on MaxViT's attention: its nn.Linear projections (MACs + bias per token) and
    ``F.softmax`` (the logits); its ``torch.einsum`` products are not patched."""
    return c.macs - c.products + c.bias + c.positions


def projection_params(c: Cost) -> int:
    """torchinfo on MaxViT's attention: the params of its two nn.Linear projections, to_qkv
    (C -> 3C) and merge (C -> C), 4C^2 + 4C, per sample (its einsums count nothing). C is the
    projections' MACs per bias add."""
    channels = projection_macs(c) // c.bias
    return 4 * channels * (channels + 1)


def rounded_einsums(c: Cost) -> int:
    """fvcore on MaxViT's attention: the projections' MACs, and each of its two einsums (QK^T,
    AV) as numpy's einsum_path prints its FLOP count, 2 x MACs to 4 significant digits
    (``%.3e``), halved and floored."""
    return projection_macs(c) + 2 * math.floor(float(f"{c.products:.3e}") / 2)


def macs_and_norm(per_element: int) -> Rule:
    """Weight MACs plus ``per_element`` per element a LayerNorm normalises (``positions``)."""
    return lambda c: c.macs + per_element * c.positions


def times(k: int, of: Rule) -> Rule:
    """``k`` times another rule (ptflops counts a module hook and the functional it calls)."""
    return lambda c: k * of(c)


def affine(with_affine: int, without: int) -> Rule:
    """``with_affine`` (or ``without``) per input element, by whether the op has params."""
    return lambda c: c.in_numel * (with_affine if c.params else without)


# Products of activations (ops/linalg.py): matmul, einsum, scaled_dot_product_attention.


def first_operand_rows(c: Cost) -> int:
    """fvcore's aten::matmul handle and ptflops' torch.matmul patch: a's elements times b's
    columns (``positions``), which is the product's MACs unless a's leading dims broadcast."""
    return c.positions


def numpy_einsum(c: Cost) -> int:
    """fvcore on torch.einsum: numpy's einsum_path FLOP count of its cheapest contraction
    order (``positions``, and the 1 numpy adds), printed to 4 significant digits (``%.3e``),
    halved and floored."""
    return math.floor(float(f"{c.positions + 1:.3e}") / 2)


@dataclass(frozen=True)
class Convention:
    """One tool's way of counting: a rule per counted category, the categories it does not
    count, and a one-line description. Together they name every :class:`Category` exactly
    once (tests/test_conventions.py), so a new category needs a decision in every tool."""

    doc: str
    rules: dict[Category, Rule]
    uncounted: frozenset[Category]

    def count(self, category: Category, cost: Cost) -> int:
        """This tool's count for one op of ``category`` with ``cost`` (whose own category, when
        set, overrides the op's); an op made of parts, the sum of its parts' counts."""
        if cost.parts:
            return sum(self.count(category, part) for part in cost.parts)
        category = cost.category or category
        return 0 if category in self.uncounted else self.rules[category](cost)


def _none(*names: str) -> frozenset[Category]:
    """The categories a tool does not count, listed by name (never derived from the rules, so
    a new category fails the completeness test until every tool has a decision for it)."""
    return frozenset(Category(n) for n in names)


_MOVES = ("add", "mul", "concat", "reduce", "move")
_ACTS = ("relu", "leaky_relu", "relu6", "sigmoid", "tanh", "gelu", "silu", "softmax",
         "hardswish", "hardsigmoid")
_POOLS = ("maxpool", "avgpool", "adaptive_avg", "adaptive_max")


_RESIZES = ("upsample_nearest", "upsample_linear", "upsample_other")
_NORMS = ("batchnorm", "groupnorm", "lrn", "layernorm", "layernorm2d")
# Tensor primitives (ops/arith.py, ops/reduce.py, the newer activations), measured live in
# tests/test_op_conventions.py: no tool counts these; ELU (ptflops: nn.ELU hook + F.elu patch)
# and PReLU (a module with a weight) are decided per tool. Reductions are `reduce`, as mean.
_PRIMITIVES = ("arithmetic", "mish", "selu", "softplus", "hardtanh", "quick_gelu")

CONVENTIONS: dict[str, Convention] = {
    "torchvision": Convention(
        "multiply-accumulates of conv/linear weights, no bias (torchvision _ops, "
        "FlopCounterMode/2)",
        {C.WEIGHTED: macs, C.TRANSPOSED: macs, C.WEIGHTED_ND: macs, C.ATTENTION: macs,
         C.WINDOW_ATTENTION: macs, C.COSINE_WINDOW_ATTENTION: macs, C.POSITION_MLP: macs,
         C.PATCH_MERGING: macs, C.RELATIVE_ATTENTION: macs,
         C.MATMUL: macs, C.EINSUM: macs, C.SDPA: macs,  # products of activations
         C.SCALED_STD_CONV: macs},  # its F.conv2d
        _none(*_NORMS, *_ACTS, *_POOLS, *_MOVES, *_RESIZES,
              *_PRIMITIVES, "elu", "prelu",  # tensor primitives: no matmul or convolution
              "weight_standardisation")),  # F.batch_norm: not counted
    "torchinfo": Convention(
        "torchinfo Mult-Adds: conv/linear MACs + bias, norm params, token linear params",
        {C.WEIGHTED: macs_bias, C.TRANSPOSED: params_per_position, C.BATCHNORM: params,
         C.GROUPNORM: params, C.WEIGHTED_ND: params, C.LAYERNORM: params,
         C.LAYERNORM2D: params, C.PATCH_MERGING: params, C.POSITION_MLP: params,
         C.RELATIVE_ATTENTION: projection_params,
         C.PRELU: params,  # tensor primitives: PReLU's weight, x batch
         C.SCALED_STD_CONV: macs_bias},  # "Conv" in the class name: weight and bias
        _none("weight_standardisation",  # no module of its own
              "lrn", "attention", "window_attention", "cosine_window_attention", *_ACTS,
              *_POOLS, *_MOVES, *_RESIZES,
              *_PRIMITIVES, "elu",  # tensor primitives: no parameters
              "matmul", "einsum", "sdpa")),  # products of activations: no module
    "fvcore": Convention(
        "fvcore: conv/linear MACs, BN 2 x numel, adaptive avg pool numel, attention "
        "projections",
        {C.WEIGHTED: macs, C.TRANSPOSED: macs, C.WEIGHTED_ND: macs, C.ATTENTION: projections,
         C.BATCHNORM: affine(2, 1), C.GROUPNORM: affine(5, 4), C.LAYERNORM: affine(5, 4),
         C.LAYERNORM2D: affine(5, 4), C.ADAPTIVE_AVG: in_numel,
         C.UPSAMPLE_NEAREST: out_numel, C.UPSAMPLE_LINEAR: times(4, out_numel),
         C.WINDOW_ATTENTION: macs, C.COSINE_WINDOW_ATTENTION: macs, C.POSITION_MLP: macs,
         C.PATCH_MERGING: macs_and_norm(5), C.RELATIVE_ATTENTION: rounded_einsums,
         C.MATMUL: first_operand_rows, C.EINSUM: numpy_einsum,  # products of activations
         C.SCALED_STD_CONV: macs,  # aten::_convolution
         C.WEIGHT_STANDARDISATION: times(5, in_numel)},  # training-mode batch_norm, affine
        _none("lrn", *_ACTS, "maxpool", "avgpool", "adaptive_max", *_MOVES, "upsample_other",
              *_PRIMITIVES, "elu", "prelu",  # tensor primitives: no aten handle
              "sdpa")),  # products of activations: no aten handle for attention
    # ptflops' pytorch backend hooks modules *and* patches torch.nn.functional, so an nn.ReLU
    # or a pooling module is counted twice (module hook + the F.relu / F.*_pool it calls);
    # resizes are F.interpolate calls, counted once.
    "ptflops": Convention(
        "ptflops: conv/linear MACs + bias, BN 2 x numel, ReLU 2 x numel, pooling 2 x input "
        "numel, resize out numel",
        {C.WEIGHTED: macs_bias, C.TRANSPOSED: macs_bias, C.WEIGHTED_ND: macs_bias,
         C.ATTENTION: ptflops_attention, C.BATCHNORM: affine(2, 1),
         C.GROUPNORM: affine(2, 1), C.LAYERNORM: out_numel, C.LRN: lrn_ops,
         C.RELU: times(2, out_numel),
         C.LEAKY_RELU: out_numel,
         C.RELU6: out_numel, C.GELU: times(2, out_numel), C.SILU: out_numel,
         C.SOFTMAX: out_numel, C.MAXPOOL: times(2, in_numel),
         C.AVGPOOL: times(2, in_numel), C.ADAPTIVE_AVG: times(2, in_numel),
         C.ADAPTIVE_MAX: times(2, in_numel), C.UPSAMPLE_NEAREST: out_numel,
         C.UPSAMPLE_LINEAR: out_numel, C.UPSAMPLE_OTHER: out_numel,
         C.WINDOW_ATTENTION: products_and_logits, C.COSINE_WINDOW_ATTENTION: av_and_logits,
         C.POSITION_MLP: mlp_ops, C.PATCH_MERGING: macs_and_norm(1),
         C.RELATIVE_ATTENTION: projection_ops,
         C.MATMUL: first_operand_rows,  # products of activations: the torch.matmul patch
         # tensor primitives: nn.ELU and nn.PReLU hooked (numel) and F.elu, F.prelu patched
         C.ELU: times(2, out_numel), C.PRELU: times(2, out_numel)},
        _none("sigmoid", "tanh", "hardswish", "hardsigmoid", "layernorm2d", *_MOVES,
              *_PRIMITIVES,  # tensor primitives: neither hooked nor patched
              "einsum", "sdpa",  # products of activations: neither is patched
              "scaled_std_conv", "weight_standardisation")),  # a Conv2d subclass: not hooked
    "thop": Convention(
        "thop: conv/linear MACs, BN 4 x numel, avg pool out numel, adaptive avg pool (k+1) x "
        "out",
        {C.WEIGHTED: macs, C.TRANSPOSED: weights_per_position, C.WEIGHTED_ND: macs,
         C.BATCHNORM: affine(4, 2), C.LAYERNORM: affine(4, 2),
         C.SOFTMAX: softmax_ops, C.AVGPOOL: out_numel,
         C.ADAPTIVE_AVG: lambda c: c.out_numel * (c.in_numel // max(c.out_numel, 1) + 1),
         C.POSITION_MLP: macs, C.PATCH_MERGING: macs_and_norm(4),
         C.RELATIVE_ATTENTION: projection_macs,
         C.PRELU: in_numel},  # tensor primitives: count_prelu, numel in eval mode
        _none("groupnorm", "lrn", "layernorm2d", "attention", "window_attention",
              *_PRIMITIVES, "elu",  # tensor primitives: no rule for their modules
              "cosine_window_attention", "relu", "leaky_relu", "relu6",
              "sigmoid", "tanh", "gelu", "silu", "hardswish", "hardsigmoid", "maxpool",
              "adaptive_max", *_MOVES, *_RESIZES,
              "matmul", "einsum", "sdpa",  # products of activations: no module
              "scaled_std_conv", "weight_standardisation")),  # hooks match exact types
}

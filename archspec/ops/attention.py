"""Attention and the learnable tensors of transformers: multi-head self-attention over tokens,
the class token, the position embedding and the layer scale.

Inputs are per sample: ``(T, D)`` is T tokens of D features. A learnable tensor sits at the
layer's own path, so that its state_dict key is the path (torchvision's ``class_token``,
``encoder.pos_embedding``, ``features.1.0.layer_scale``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import model_validator

from archspec.ops.base import (
    POINTWISE,
    Attrs,
    Category,
    Cost,
    Ctx,
    Learned,
    Module,
    NoAttrs,
    OpDef,
    Shape,
    ShapeError,
    changed,
    check_range,
    fmt_shape,
    function,
    module,
    numel,
)
from archspec.ops.registry import register

HELPERS = "archspec.backends.modules"


def _tokens(op: str, x: Shape) -> tuple[int, int]:
    """``(T, D)`` of a tokens x features input."""
    if len(x) != 2:
        raise ShapeError(f"`{op}` needs a (tokens, features) input per sample, got "
                         f"{fmt_shape(x)}", code="E303",
                         hint="flatten a (C, H, W) map to (C, H*W) and `permute([1, 0])` it")
    return x[0], x[1]


# ------------------------------------------------------------------------ mhsa


class AttentionAttrs(Attrs):
    heads: int
    dropout: float = 0.0
    bias: bool = True

    @model_validator(mode="after")
    def _domains(self) -> AttentionAttrs:
        check_range(self, ("heads",), 1)
        if not 0.0 <= self.dropout <= 1.0:
            raise ValueError(f"`dropout` (={self.dropout}) must be between 0 and 1")
        return self


def _mhsa_infer(inputs: tuple[Shape, ...], a: AttentionAttrs) -> Shape:
    _, d = _tokens("mhsa", inputs[0])
    if d % a.heads:
        raise ShapeError(f"`heads` (={a.heads}) must divide the {d} features",
                         hint="each head takes features / heads of them")
    return inputs[0]


def _mhsa_cost(ctx: Ctx) -> Cost:
    """Q, K, V projections (3 D x D per token), QK^T and AV (T x T x D each, summed over the
    heads), the output projection (D x D per token). FLOPs: 2 per MAC, the biases, the scaling
    of Q (T x D) and a softmax of 3 per score. ``scratch``: the heads x T x T scores."""
    t, d = ctx.x
    a: AttentionAttrs = ctx.attrs
    macs = 4 * t * d * d + 2 * t * t * d
    bias = 4 * t * d if a.bias else 0
    scores = a.heads * t * t
    return Cost(params=4 * d * d + (4 * d if a.bias else 0), macs=macs, bias=bias,
                flops=2 * macs + bias + t * d + 3 * scores, in_numel=t * d, out_numel=t * d,
                positions=t, scratch=scores)


def _mhsa_torch(ctx: Ctx) -> Module:
    """``nn.MultiheadAttention`` called as ``attn(x, x, x, need_weights=False)[0]``."""
    a: AttentionAttrs = ctx.attrs
    built = module("torch.nn.MultiheadAttention", ctx.x[1], a.heads,
                   **changed({"dropout": 0.0, "bias": True}, dropout=a.dropout, bias=a.bias),
                   batch_first=True)
    return replace(built, repeat=3, call=(("need_weights", False),), item=0)


def _heads(b: Any, name: str, source: str, t: int, a: AttentionAttrs, d: int) -> str:
    """(N, T, D) -> (N, heads, T, D / heads)."""
    b.node("Reshape", [source, b.const(f"{name}_shape", [0, t, a.heads, d // a.heads],
                                       "int64")], [b.tmp(f"{name}_split")])
    b.node("Transpose", [b.tmp(f"{name}_split")], [b.tmp(f"{name}_heads")], perm=[0, 2, 1, 3])
    return b.tmp(f"{name}_heads")


def _mhsa_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """The projections as MatMul by transposed weights, scores scaled by 1/sqrt(D / heads),
    Softmax over the keys, the heads merged, the output projection."""
    t, d = ctx.x
    a: AttentionAttrs = ctx.attrs
    b.node("Transpose", [b.param("in_proj_weight")], [b.tmp("in_t")], perm=[1, 0])
    qkv = b.tmp("qkv") if a.bias else b.tmp("qkv_biased")
    b.node("MatMul", [inputs[0], b.tmp("in_t")], [qkv])
    if a.bias:
        b.node("Add", [qkv, b.param("in_proj_bias")], [b.tmp("qkv_biased")])
    parts = [b.tmp(n) for n in ("q", "k", "v")]
    b.node("Split", [b.tmp("qkv_biased"), b.const("split", [d, d, d], "int64")], parts, axis=2)
    q, k, v = (_heads(b, n, src, t, a, d) for n, src in zip("qkv", parts, strict=True))
    b.node("Transpose", [k], [b.tmp("k_t")], perm=[0, 1, 3, 2])
    b.node("MatMul", [q, b.tmp("k_t")], [b.tmp("scores")])
    b.node("Mul", [b.tmp("scores"), b.const("scale", (d // a.heads) ** -0.5)],
           [b.tmp("scaled")])
    b.node("Softmax", [b.tmp("scaled")], [b.tmp("weights")], axis=-1)
    b.node("MatMul", [b.tmp("weights"), v], [b.tmp("mixed")])
    b.node("Transpose", [b.tmp("mixed")], [b.tmp("merged")], perm=[0, 2, 1, 3])
    b.node("Reshape", [b.tmp("merged"), b.const("merge", [0, t, d], "int64")],
           [b.tmp("tokens")])
    b.node("Transpose", [b.param("out_proj.weight")], [b.tmp("out_t")], perm=[1, 0])
    projected = b.tmp("projected") if a.bias else output
    b.node("MatMul", [b.tmp("tokens"), b.tmp("out_t")], [projected])
    if a.bias:
        b.node("Add", [projected, b.param("out_proj.bias")], [output])


register(OpDef(name="mhsa", attrs=AttentionAttrs, infer=_mhsa_infer, cost=_mhsa_cost,
               torch=_mhsa_torch, onnx=_mhsa_onnx, category=Category.ATTENTION,
               step=lambda ctx: POINTWISE, positional=("heads", "dropout"),
               aliases=("self_attention",),
               doc="Multi-head self-attention over (T, D) tokens with nn.MultiheadAttention's "
                   "parameters (`in_proj_weight`/`in_proj_bias` for Q, K, V; `out_proj`): "
                   "`heads` (dividing D), attention `dropout`, `bias`. Params 4D^2 (+4D); MACs "
                   "4TD^2 + 2T^2D (projections, QK^T, AV); memory: heads x T^2 scores."))

# ------------------------------------------------------------------------ learned tensors


def _class_token_torch(ctx: Ctx) -> Learned:
    return Learned(module(f"{HELPERS}.learned", (1, 1, ctx.x[1])),
                   function(f"{HELPERS}.prepend_token"))


def _class_token_onnx(ctx: Ctx, b: Any, inputs: list[str], output: str) -> None:
    """The token expanded to (N, 1, D), the batch read from the input's shape, then Concat."""
    b.node("Shape", inputs, [b.tmp("shape")], start=0, end=1)
    b.node("Concat", [b.tmp("shape"), b.const("token_dims", [1, ctx.x[1]], "int64")],
           [b.tmp("batched")], axis=0)
    b.node("Expand", [b.param(None), b.tmp("batched")], [b.tmp("tokens")])
    b.node("Concat", [b.tmp("tokens"), inputs[0]], [output], axis=1)


def _class_token_infer(inputs: tuple[Shape, ...], a: NoAttrs) -> Shape:
    t, d = _tokens("class_token", inputs[0])
    return (t + 1, d)


register(OpDef(name="class_token", attrs=NoAttrs, infer=_class_token_infer,
               cost=lambda ctx: Cost(params=ctx.x[1], in_numel=numel(ctx.x),
                                     out_numel=numel(ctx.out)),
               torch=_class_token_torch, onnx=_class_token_onnx, category=Category.CONCAT,
               step=lambda ctx: POINTWISE, min_opset=15,
               doc="Puts a learnable token (1, 1, D), initialised to zeros, before the tokens "
                   "of a (T, D) input: (T + 1, D), as ViT's class token. Params D; FLOPs 0."))


class EmbeddingAttrs(Attrs):
    std: float = 0.02


def _embedding_torch(ctx: Ctx) -> Learned:
    return Learned(module(f"{HELPERS}.learned", (1, *ctx.x), std=ctx.attrs.std),
                   function("operator.add"))


register(OpDef(name="position_embedding", attrs=EmbeddingAttrs, infer=lambda i, a: i[0],
               cost=lambda ctx: Cost(params=numel(ctx.x), flops=numel(ctx.x),
                                     in_numel=numel(ctx.x), out_numel=numel(ctx.x)),
               torch=_embedding_torch, category=Category.ADD, step=lambda ctx: POINTWISE,
               onnx=lambda ctx, b, inputs, output: b.node(
                   "Add", [inputs[0], b.param(None)], [output]),
               positional=("std",),
               doc="Adds a learnable tensor of the input's shape (stored with a leading 1), "
                   "drawn from N(0, `std`^2) when the layer is built, as ViT's position "
                   "embedding. Params: the input's per-sample size; FLOPs 1 per element."))


class LayerScaleAttrs(Attrs):
    value: float


def _scale_shape(x: Shape) -> Shape:
    """One factor per channel of a (C, *spatial) map, broadcast over the positions."""
    return (x[0], *(1 for _ in x[1:]))


def _layer_scale_torch(ctx: Ctx) -> Learned:
    return Learned(module(f"{HELPERS}.learned", _scale_shape(ctx.x), fill=ctx.attrs.value),
                   function("operator.mul"))


register(OpDef(name="layer_scale", attrs=LayerScaleAttrs, infer=lambda i, a: i[0],
               cost=lambda ctx: Cost(params=ctx.x[0], flops=numel(ctx.x),
                                     in_numel=numel(ctx.x), out_numel=numel(ctx.x)),
               torch=_layer_scale_torch, category=Category.MUL, step=lambda ctx: POINTWISE,
               onnx=lambda ctx, b, inputs, output: b.node(
                   "Mul", [inputs[0], b.param(None)], [output]),
               positional=("value",),
               doc="Multiplies each channel of a (C, *spatial) input by a learnable factor "
                   "of shape (C, 1, ...), initialised to `value`, as ConvNeXt's layer scale. "
                   "Params C; FLOPs 1 per element."))
